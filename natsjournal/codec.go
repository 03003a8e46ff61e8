package natsjournal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A message of the stream holds one or more records of one instance, each
// with its LSN:
//
//	magic byte 'W', version byte 1, uvarint count, then per record:
//	uvarint LSN, uvarint length, the record's bytes
//
// Records of one message are all stored or none: a transaction's group is
// always one message. The message id (deduplication on a retried publish)
// is "<instance>:<first LSN>-<last LSN>".

const (
	msgMagic   = 'W'
	msgVersion = 1
)

// encodeMsg appends the message of recs (with their LSNs) to dst.
func encodeMsg(dst []byte, lsns []uint64, recs [][]byte) []byte {
	dst = append(dst, msgMagic, msgVersion)
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for i, r := range recs {
		dst = binary.AppendUvarint(dst, lsns[i])
		dst = binary.AppendUvarint(dst, uint64(len(r)))
		dst = append(dst, r...)
	}
	return dst
}

// errBadMsg is a message that is not writeback's.
var errBadMsg = errors.New("not a writeback journal message")

// decodeMsg calls fn with each record of a message, in order. rec aliases b.
func decodeMsg(b []byte, fn func(lsn uint64, rec []byte) error) error {
	if len(b) < 2 || b[0] != msgMagic {
		return errBadMsg
	}
	if b[1] != msgVersion {
		return fmt.Errorf("journal message version %d is unknown to this build (it knows %d)", b[1], msgVersion)
	}
	b = b[2:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return errBadMsg
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		lsn, k := binary.Uvarint(b)
		if k <= 0 {
			return errBadMsg
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return errBadMsg
		}
		b = b[k:]
		if err := fn(lsn, b[:size:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	if len(b) != 0 {
		return errBadMsg
	}
	return nil
}
