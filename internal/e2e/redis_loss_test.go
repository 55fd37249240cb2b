package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
)

// A subscriber connection that Redis drops loses whatever was published
// to it meanwhile (pub/sub is at most once). A request in flight across
// nodes must then end promptly with an error, not wait for its timeout.
func TestRedisSubscriberDroppedFailsInFlight(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	ba, ra := redisNode(t, srv, prefix)
	bb, rb := redisNode(t, srv, prefix)
	a := startProxy(t, proxy.Config{Node: "a", Bus: ba, Registry: ra, RequestTimeout: 20 * time.Second})
	b := startProxy(t, proxy.Config{Node: "b", Bus: bb, Registry: rb, RequestTimeout: 20 * time.Second})
	started := make(chan struct{}, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			return
		}
		started <- struct{}{}
		<-r.Context().Done()
	})
	c := startClient(t, a, be.URL, newKey(t))
	go func() {
		<-started
		admin := srv.NewClient(t)
		if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Errorf("client kill: %v", err)
		}
	}()
	begin := time.Now()
	resp, err := visitor(b).Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(begin)
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("got %d, want 502 or 503", resp.StatusCode)
	}
	if took > 5*time.Second {
		t.Errorf("took %v with a 20s timeout, want a prompt failure", took)
	}
	t.Logf("in-flight request failed after %v", took)
	// Service is back once the subscriptions are.
	waitFor(t, "cross-node service back", func() bool {
		resp, err := visitor(b).Get(c.url + "/ok")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
