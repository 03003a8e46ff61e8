package writeback

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The driver logs every UPDATE that matched no row; the workloads make
	// many on purpose. Keep errors visible, the rest quiet.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
