package natsjournal_test

import (
	"context"
	"log"

	"github.com/writeback-go/writeback"
	_ "github.com/writeback-go/writeback/natsjournal" // links the replicated journal
)

// A process of several behind a load balancer: its name comes from the
// environment (a pod or host name) through the DSN's instance=, and its
// rules name the NATS servers:
//
//	journal:
//	  nats: nats://n1:4222,nats://n2:4222,nats://n3:4222
//	  replicas: 3
//	  lease: 10s
//	  takeover: true
//	tables:
//	  carts:    {mode: back, key: [id], ack: replicated}
//	  counters: {mode: back, key: [id]}
//
// A write to carts returns once a quorum of the stream stored its record;
// one to counters from memory, its record published in the background.
// Closing the *sql.DB flushes, purges what was applied from the stream and
// releases the instance's lease.
func Example() {
	db, err := writeback.OpenDSN("driver=pgx rules=writeback.yaml instance=web-1 dsn=postgres://app@db/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "UPDATE carts SET items = items + 1 WHERE id = $1", 42); err != nil {
		log.Fatal(err) // ack: replicated: the level could not be met (NATS unreachable within ctx)
	}
	// A checkout asks for more on one write: here, the database itself.
	checkout := writeback.ContextWithAck(ctx, writeback.AckThrough)
	if _, err := db.ExecContext(checkout, "UPDATE carts SET state = 'paid' WHERE id = $1", 42); err != nil {
		log.Fatal(err)
	}
}
