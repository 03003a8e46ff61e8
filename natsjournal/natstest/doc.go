// Package natstest tests the replicated journal (natsjournal) against an
// embedded JetStream cluster of three servers on loopback ports, started by
// the tests themselves: no NATS service is needed. It is its own module so
// that the NATS server, a test dependency, is not one of natsjournal's.
package natstest
