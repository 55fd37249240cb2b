package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/h1"
	"keyhole/internal/proxy"
	"keyhole/internal/sock"
)

// testProxy is a real proxy on a loopback port.
type testProxy struct {
	*proxy.Server
	http *h1.Server
	addr string // 127.0.0.1:port
}

func startProxy(t *testing.T, cfg proxy.Config) *testProxy {
	t.Helper()
	return startProxyOn(t, "127.0.0.1:0", cfg)
}

// startProxyOn starts a proxy on addr, e.g. to restart one on its port.
func startProxyOn(t *testing.T, addr string, cfg proxy.Config) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if cfg.PublicPort == "" {
		cfg.PublicPort = port
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// As the proxy command serves plain HTTP: the fast path in front of
	// net/http.
	hs := h1.NewServer(&http.Server{Handler: srv, MaxHeaderBytes: proxy.MaxHeaderBytes}, sock.Listener(ln))
	go hs.Serve()
	p := &testProxy{Server: srv, http: hs, addr: ln.Addr().String()}
	t.Cleanup(p.stop)
	return p
}

func (p *testProxy) stop() {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	p.Server.Drain(done)
	p.http.Close()
	p.Server.Close()
}

func (p *testProxy) wsURL() string { return "ws://" + p.addr }

// testClient is a real client running in the test process.
type testClient struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

type clientOpt func(*client.Config)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startClient runs a client for target and waits until its tunnel is up.
func startClient(t *testing.T, p *testProxy, target string, key ed25519.PrivateKey, opts ...clientOpt) *testClient {
	t.Helper()
	return startClientAt(t, p.wsURL(), target, key, opts...)
}

// startClientAt runs a client whose link goes to proxyURL.
func startClientAt(t *testing.T, proxyURL, target string, key ed25519.PrivateKey, opts ...clientOpt) *testClient {
	t.Helper()
	ready := make(chan string, 16)
	cfg := client.Config{
		Proxy:      proxyURL,
		Target:     target,
		Key:        key,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Ready:      func(u string) { ready <- u },
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testClient{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tc.done)
		c.Run(ctx)
	}()
	t.Cleanup(tc.stop)
	select {
	case tc.url = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("client did not register within 5s")
	}
	return tc
}

// do sends req with hc and returns the response, its body read whole.
func do(t *testing.T, hc *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// runClient runs a client with cfg until the test ends and returns the
// URL of each registration as it comes.
func runClient(t *testing.T, cfg client.Config) <-chan string {
	t.Helper()
	ready := make(chan string, 16)
	cfg.Ready = func(u string) { ready <- u }
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ready
}

// stop kills the client and waits until it has let go of everything.
func (c *testClient) stop() {
	c.cancel()
	<-c.done
}

// visitor returns an HTTP client that reaches the proxy whatever host a
// URL names, as a browser resolving *.localhost to loopback would.
func visitor(p *testProxy) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, p.addr)
			},
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// backend starts a private service.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// hostOf returns the host:port of a public URL.
func hostOf(u string) string {
	return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
}

// httptestServer is a backend the caller closes itself, for tests that
// count goroutines after it is gone.
func httptestServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	return httptest.NewServer(h)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// relay is a TCP relay whose current connections can be frozen: bytes
// stop flowing both ways but nothing is closed, as when a network path
// dies silently. New connections after a freeze flow normally.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex // protects conns and gate
	conns []net.Conn
	gate  chan struct{} // closed to freeze the connections opened under it
}

// startRelay starts a relay to the given addresses, round robin: with
// several, it is a load balancer in front of proxy nodes.
func startRelay(t *testing.T, to ...string) *relay {
	t.Helper()
	return startRelayPicking(t, func(n int) []string { return []string{to[n%len(to)]} })
}

// startFailoverRelay starts a relay that sends each connection to the
// first of the addresses that accepts it.
func startFailoverRelay(t *testing.T, to ...string) *relay {
	t.Helper()
	return startRelayPicking(t, func(int) []string { return to })
}

// startRelayPicking starts a relay that sends connection n to the first
// of pick(n) that accepts it.
func startRelayPicking(t *testing.T, pick func(n int) []string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, gate: make(chan struct{})}
	go func() {
		for n := 0; ; n++ {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			var out net.Conn
			for _, addr := range pick(n) {
				if out, err = net.Dial("tcp", addr); err == nil {
					break
				}
			}
			if out == nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			gate := r.gate
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go pipe(in, out, gate)
			go pipe(out, in, gate)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			c.Close()
		}
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// freeze stops the connections open now.
func (r *relay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.gate)
	r.gate = make(chan struct{})
}

// pipe copies src to dst until either fails, then closes both, as a
// balancer would; a frozen pipe swallows everything and closes nothing.
func pipe(dst, src net.Conn, frozen chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
	}
}
