// Package drillfault is the seam by which the tests of the writeback
// command's drill break a promise on purpose, to show that the drill sees
// it. It is internal: programs outside this module cannot reach it, and
// the command sets it only in a drill's child process, and only when the
// test-only environment variable the drill names asks for it.
package drillfault

// DropAckedWrite returns a writeback.Option (as any: this package cannot
// name the type) under which a connector acknowledges its nth write that
// would be buffered (n from 1) and then discards it: no journal record, no
// buffered row, as if the record had been lost. The writeback package sets
// it when it is imported.
var DropAckedWrite func(nth int64) any
