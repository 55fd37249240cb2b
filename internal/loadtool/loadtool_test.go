package loadtool_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"keyhole/internal/loadtool"
	"keyhole/internal/proxy"
)

func startProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	srv, err := proxy.New(proxy.Config{PublicPort: port, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Config.MaxHeaderBytes = proxy.MaxHeaderBytes
	hs.Start()
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
	})
	return ln.Addr().String()
}

// TestFleet opens links that register for real and serve requests, with
// few goroutines per link on both ends together.
func TestFleet(t *testing.T) {
	addr := startProxy(t)
	before := runtime.NumGoroutine()
	const n = 300
	f, err := loadtool.Open(context.Background(), n, loadtool.Options{Proxies: []string{"ws://" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(500 * time.Millisecond) // the writers of the registration answers leave
	perLink := float64(runtime.NumGoroutine()-before) / n
	// One on each end: the proxy's link is its reader while idle, and
	// the fleet's link is one goroutine.
	if perLink > 2.05 {
		t.Errorf("got %.2f goroutines per idle link (proxy and fleet together), want 2", perLink)
	}
	if path := os.Getenv("LOADTOOL_PROFILE"); path != "" {
		runtime.GC()
		h, _ := os.Create(path + ".heap")
		pprof.WriteHeapProfile(h)
		h.Close()
		g, _ := os.Create(path + ".goroutine")
		pprof.Lookup("goroutine").WriteTo(g, 1)
		g.Close()
	}
	for range 20 {
		l := f.Links()[rand.N(n)]
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		req.Host = fmt.Sprintf("%s.localhost", l.Label())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request through %s: got %d, want 200", l.Label(), resp.StatusCode)
		}
	}
	if got := f.Registered.Load(); got != n {
		t.Errorf("got %d registrations, want %d", got, n)
	}
	t.Logf("%d links: %.2f goroutines per link, proxy and fleet together", n, perLink)
}
