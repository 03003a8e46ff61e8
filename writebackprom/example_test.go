package writebackprom_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/writebackprom"
)

// ExampleNewCollector exports a writeback database's figures to Prometheus.
// A program registers the collector once (prometheus.MustRegister(c) for the
// default registry) and serves promhttp.Handler(); here the example scrapes
// its own registry once and prints a few of the metrics.
func ExampleNewCollector() {
	dir, err := os.MkdirTemp("", "writebackprom-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rules := filepath.Join(dir, "writeback.yaml")
	if err := os.WriteFile(rules, []byte("tables:\n  page_views: {mode: back, key: [page_id], max_loss: 1h}\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	base := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	migrations, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := migrations.Exec(`CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL);
INSERT INTO page_views VALUES (1, 0)`); err != nil {
		log.Fatal(err)
	}
	migrations.Close()

	db, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	c, err := writebackprom.NewCollector(db)
	if err != nil {
		log.Fatal(err) // db is not a writeback database
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	// Three views of one page: three buffered writes, one row flushed.
	for range 3 {
		if _, err := db.Exec(`UPDATE page_views SET views = views + 1 WHERE page_id = ?`, 1); err != nil {
			log.Fatal(err)
		}
	}
	if err := writeback.Flush(context.Background(), db); err != nil {
		log.Fatal(err)
	}

	// A scrape, as Prometheus makes it.
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	lines := bufio.NewScanner(rec.Body)
	for lines.Scan() {
		for _, name := range []string{"writeback_buffered_writes_total{", "writeback_flushed_rows_total{", "writeback_dirty_rows{", "writeback_max_loss_seconds{", "writeback_failing "} {
			if strings.HasPrefix(lines.Text(), name) {
				fmt.Println(lines.Text())
			}
		}
	}
	// Output:
	// writeback_buffered_writes_total{table="page_views"} 3
	// writeback_dirty_rows{table="page_views"} 0
	// writeback_failing 0
	// writeback_flushed_rows_total{table="page_views"} 1
	// writeback_max_loss_seconds{table="page_views"} 3600
}
