package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/proxy"
)

// BenchmarkGET measures small GETs one after another through a proxy and
// a client in this process, beside the same GETs straight to the
// backend: the difference in allocations per op is the tunnel's (run
// with -benchmem, and -memprofile to see where).
func BenchmarkGET(b *testing.B) {
	body := bytes.Repeat([]byte("k"), 1<<10)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.Write(body)
	}))
	defer be.Close()
	b.Run("direct", func(b *testing.B) { benchGET(b, be.URL, be.Listener.Addr().String()) })
	b.Run("tunnel", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		srv, err := proxy.New(proxy.Config{PublicPort: port})
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: srv, MaxHeaderBytes: proxy.MaxHeaderBytes}
		go hs.Serve(ln)
		defer srv.Close()
		defer hs.Close()
		url := benchClient(b, "ws://"+ln.Addr().String(), be.URL)
		benchGET(b, url, ln.Addr().String())
	})
}

// benchClient runs a client until the benchmark ends and returns its
// public URL.
func benchClient(b *testing.B, proxyURL, target string) string {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	ready := make(chan string, 1)
	c, err := client.New(client.Config{Proxy: proxyURL, Target: target, Key: key, Ready: func(u string) { ready <- u }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case u := <-ready:
		return u
	case <-time.After(5 * time.Second):
		b.Fatal("client did not register within 5s")
		return ""
	}
}

func benchGET(b *testing.B, url, addr string) {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		DisableCompression: true,
	}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url+"/1k", nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("got status %d, want 200", resp.StatusCode)
		}
	}
}
