package tunnel_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"keyhole/tunnel"
)

// BenchmarkSmallGET compares a handler served in memory with the same
// handler on a loopback TCP server reached as a Target, through a real
// proxy: the in-memory path's cost against the client's usual one.
func BenchmarkSmallGET(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from keyhole\n") })
	b.Run("handler", func(b *testing.B) { benchGET(b, tunnel.Config{Handler: h}) })
	b.Run("tcp-target", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		benchGET(b, tunnel.Config{Target: srv.URL})
	})
}

func benchGET(b *testing.B, cfg tunnel.Config) {
	p := startProxy()
	defer p.Close()
	_, cfg.Key, _ = ed25519.GenerateKey(nil)
	cfg.Proxy = p.URL()
	tn, err := tunnel.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-tn.Ready()
	hc := p.Client()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := hc.Get(tn.URL() + "/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
