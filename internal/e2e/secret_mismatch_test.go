package e2e

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"keyhole/bus/redisbus"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
	"keyhole/internal/syncbuf"
	"keyhole/registry/redisreg"
)

// TestClusterSecretMismatch runs two nodes on one real redis-server with
// different cluster secrets. The misconfigured node says so within 10 s,
// in its log, in Ready (which /readyz answers with) and in its metrics, and
// a visitor's request to it for a tunnel on the other node fails within
// 1 s instead of waiting for the request timeout.
func TestClusterSecretMismatch(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	node := func(name, secret string, log io.Writer) *testProxy {
		client := srv.NewClient(t)
		logger := slog.New(slog.NewTextHandler(log, nil))
		b, err := redisbus.New(client, redisbus.Options{Prefix: prefix, Secret: []byte(secret), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		r, err := redisreg.New(client, redisreg.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); b.Close() })
		return startProxy(t, proxy.Config{Node: name, Bus: b, Registry: r, Logger: logger})
	}
	var logA, logB syncbuf.Buffer
	a := node("a", "the cluster's own secret 0123456789", &logA)
	b := node("b", "a mistyped secret 0123456789abcdef", &logB)
	be := backend(t, echo)
	c := startClient(t, a, be.URL, newKey(t))

	start := time.Now()
	deadline := start.Add(10 * time.Second)
	// The first heartbeat a node sends may come before it subscribes its
	// node channel, and so name no node yet: wait for one that names a.
	for err := b.Ready(); err == nil || !strings.Contains(err.Error(), "a ("); err = b.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the misconfigured node is still ready after 10 s; its log:\n%s", logB.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("node b knew after %v: %v", time.Since(start).Round(time.Millisecond), b.Ready())
	if err := b.Ready(); !strings.Contains(err.Error(), "cluster secret mismatch") || !strings.Contains(err.Error(), "a (") {
		t.Errorf("Ready: got %q, want it to say cluster secret mismatch and name node a", err)
	}
	waitFor(t, "node b to log the mismatch", func() bool {
		return strings.Contains(logB.String(), "cluster secret mismatch")
	})
	if code, body := get(t, "http://"+b.addr+proxy.MetricsPath, "localhost"); code != 200 || strings.Contains(body, "keyhole_bus_heartbeats_refused_total 0\n") || !strings.Contains(body, "keyhole_bus_heartbeats_refused_total ") {
		t.Errorf("node b's metrics: got %d, want keyhole_bus_heartbeats_refused above 0:\n%s", code, body)
	}

	// A cross-node request from the misconfigured node fails at once.
	req, _ := http.NewRequest("GET", c.url+"/", nil)
	began := time.Now()
	resp, err := visitor(b).Do(req)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("visitor at node b: %v after %v", err, took)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || took > time.Second {
		t.Errorf("visitor at node b for a tunnel on node a: got %d after %v, want 503 within 1 s", resp.StatusCode, took)
	}
	if !strings.Contains(logB.String(), "cluster secret mismatch") {
		t.Errorf("node b logged no mismatch:\n%s", logB.String())
	}
	// The tunnel's own node still serves it.
	resp, err = visitor(a).Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("visitor at node a, the tunnel's own: got %d, want 200", resp.StatusCode)
	}
}
