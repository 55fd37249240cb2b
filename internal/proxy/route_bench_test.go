package proxy

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/link"
	"keyhole/messages"
)

// benchServer is a proxy with n tunnels, each a link over one real
// WebSocket (routing only looks at whether a link is up).
func benchServer(tb testing.TB, n int) (*Server, []string) {
	tb.Helper()
	s, err := New(Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err == nil {
			defer ws.Close()
			ws.ReadMessage()
		}
	}))
	tb.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ws.Close() })
	conn := link.New(ws, link.Options{})
	hosts := make([]string, n)
	for i := range hosts {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), byte(i>>8)
		label := identity.Label(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
		s.addLink(&clientLink{label: label, srv: s, conn: conn, streams: map[messages.ID]sink{}})
		hosts[i] = label + ".localhost:8080"
	}
	return s, hosts
}

// BenchmarkRoute measures what every request pays to find its tunnel:
// the canonical host, the label check and the pick of a live link.
func BenchmarkRoute(b *testing.B) {
	s, hosts := benchServer(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		label, ok := s.labelOf(canonicalHost(hosts[i%len(hosts)]))
		if !ok {
			b.Fatal("not a tunnel host")
		}
		if _, l, err := s.route(ctx, label, nil); err != nil || l == nil {
			b.Fatal(err)
		}
		i++
	}
}

func TestRouteAllocatesNothing(t *testing.T) {
	s, hosts := benchServer(t, 10)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		label, _ := s.labelOf(canonicalHost(hosts[3]))
		s.route(ctx, label, nil)
	})
	if allocs != 0 {
		t.Errorf("routing a request to a local tunnel: got %v allocations, want 0", allocs)
	}
}
