package main

import (
	"math"
	"math/bits"
	"time"
)

// latencyHist is a log-linear histogram of durations in nanoseconds: exact
// below 32 ns, then 16 buckets per power of two, so a quantile read from it
// is within about 3% of the true value. One goroutine owns each; merge sums
// them at the end.
type latencyHist struct {
	counts [latencyBuckets]int64
	total  int64
}

const (
	latencySubBits = 4 // 16 buckets per power of two
	latencyBuckets = (64-latencySubBits)*(1<<latencySubBits) + 2<<latencySubBits
)

// bucketOf is the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < 2<<latencySubBits {
		return int(v)
	}
	shift := bits.Len64(v) - latencySubBits - 1
	return shift<<latencySubBits + int(v>>shift)
}

// bucketMid is the middle of bucket i, in nanoseconds.
func bucketMid(i int) float64 {
	if i < 2<<latencySubBits {
		return float64(i)
	}
	shift := i>>latencySubBits - 1
	m := uint64(i&(1<<latencySubBits-1) + 1<<latencySubBits)
	lo := float64(m << shift)
	return lo + float64(uint64(1)<<shift)/2
}

func (h *latencyHist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
}

// quantile is the duration below which a fraction q of the samples fall
// (the middle of its bucket); ok is false when there are no samples.
func (h *latencyHist) quantile(q float64) (d time.Duration, ok bool) {
	if h.total == 0 {
		return 0, false
	}
	rank := int64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen int64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return time.Duration(bucketMid(i)), true
		}
	}
	return 0, false // not reached: the counts add up to total
}
