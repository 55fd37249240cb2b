// Package leaktest checks, in tests, that goroutines started by the code
// under test have all ended.
package leaktest

import (
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// Settle is how long Check waits for goroutines to end.
const Settle = 5 * time.Second

// Check fails t unless the number of goroutines falls back to at most
// before within Settle; then it lists them all.
func Check(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(Settle)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if now := runtime.NumGoroutine(); now > before {
		var dump strings.Builder
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("got %d goroutines after %v, want at most %d:\n%s", now, Settle, before, dump.String())
	}
}
