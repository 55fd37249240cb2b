package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/bus"
	"keyhole/internal/client"
	"keyhole/internal/identity"
	"keyhole/internal/leaktest"
	"keyhole/internal/proxy"
	"keyhole/messages"
	"keyhole/registry"
)

func withHeader(name, value string) clientOpt {
	return func(c *client.Config) { c.Header = http.Header{name: {value}} }
}

func TestReplicasShareAndFailOver(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Replica"))
	})
	key := newKey(t)
	a := startClient(t, p, be.URL, key, withHeader("X-Replica", "a"))
	b := startClient(t, p, be.URL, key, withHeader("X-Replica", "b"))
	if a.url != b.url {
		t.Fatalf("replicas got %s and %s, want one URL", a.url, b.url)
	}
	v := visitor(p)
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		resp, err := v.Get(a.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body)]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("got %v, want requests spread over both replicas", seen)
	}

	// Requests keep flowing while replica a is killed: none is lost.
	var failed, served atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := v.Get(a.url + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	a.stop()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("got %d failed requests of %d while a replica was killed, want 0", failed.Load(), failed.Load()+served.Load())
	}
	if served.Load() < 20 {
		t.Errorf("served only %d requests", served.Load())
	}
}

func TestClientReconnectsAfterProxyRestart(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, echo)
	c := startClient(t, p, be.URL, newKey(t))
	addr := p.addr
	p.stop()
	p2 := startProxyOn(t, addr, proxy.Config{})
	deadline := time.Now().Add(5 * time.Second)
	for p2.Stats().LinksActive.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("client did not reconnect to the restarted proxy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := visitor(p2).Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after reconnect: got %d, want 200", resp.StatusCode)
	}
}

func TestSameInstanceReplacesOlderLink(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	key := newKey(t)
	instance := [16]byte{7}
	register := func() *websocket.Conn {
		ws, ch := rawLink(t, p)
		q := identity.Register(key, ch, instance, time.Now())
		sendRaw(t, ws, messages.TypeRegistrationRequest, q.Append(nil))
		if f := readRaw(t, ws); f.Type != messages.TypeRegistrationResponse {
			t.Fatalf("got %v, want RegistrationResponse", f.Type)
		}
		return ws
	}
	first := register()
	register()
	first.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, _, err := first.ReadMessage()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("older link still open 3s after its replacement registered")
		}
		if err != nil {
			break // closed by the proxy, as it should be
		}
	}
	waitFor(t, "one active link", func() bool { return p.Stats().LinksActive.Load() == 1 })
}

func TestSilentLinkIsDropped(t *testing.T) {
	p := startProxy(t, proxy.Config{PingInterval: 100 * time.Millisecond, LinkTimeout: 400 * time.Millisecond})
	key := newKey(t)
	ws, ch := rawLink(t, p)
	q := identity.Register(key, ch, [16]byte{}, time.Now())
	sendRaw(t, ws, messages.TypeRegistrationRequest, q.Append(nil))
	readRaw(t, ws)
	// The raw link never reads or answers again, like a peer whose
	// network vanished.
	deadline := time.Now().Add(3 * time.Second)
	for p.Stats().LinksActive.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("silent link still up after 3s with a 400ms timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClientNoticesSilentLinkAndReconnects(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	relay := startRelay(t, p.addr)
	be := backend(t, echo)
	ready := runClient(t, client.Config{
		Proxy: "ws://" + relay.addr(), Target: be.URL, Key: newKey(t),
		PingInterval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	url := <-ready
	// The network path goes silent: no bytes either way, no FIN.
	relay.freeze()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the silent link and register again")
	}
	resp, err := visitor(p).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after reconnecting: got %d, want 200", resp.StatusCode)
	}
}

func TestDrainMovesClientsToAnotherNode(t *testing.T) {
	shared, routes := bus.NewMemory(), registry.NewMemory()
	a := startProxy(t, proxy.Config{Node: "a", Bus: shared, Registry: routes})
	b := startProxy(t, proxy.Config{Node: "b", Bus: shared, Registry: routes})
	lb := startRelay(t, a.addr, b.addr)
	be := backend(t, echo)
	ready := runClient(t, client.Config{
		Proxy: "ws://" + lb.addr(), Target: be.URL, Key: newKey(t),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	url := <-ready
	if a.Stats().LinksActive.Load() != 1 {
		t.Fatal("the balancer's first connection should land on node a")
	}

	// Visitors keep coming in on both nodes the whole time: on b, which
	// reaches the client through a until the client moves, and on a, the
	// node being drained.
	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range []*testProxy{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := visitor(p)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := v.Get(url + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)

	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	start := time.Now()
	a.Drain(dctx)
	took := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := a.Stats().LinksActive.Load(); n != 0 {
		t.Errorf("node a still has %d links after draining for %v", n, took)
	}
	if n := b.Stats().LinksActive.Load(); n != 1 {
		t.Errorf("node b has %d links, want the client's new one", n)
	}
	if failed.Load() != 0 {
		t.Errorf("got %d failed requests of %d during the drain, want 0", failed.Load(), failed.Load()+served.Load())
	}
	t.Logf("drain took %v; %d requests served meanwhile", took, served.Load())
	// A draining node refuses new links.
	_, r, err := websocket.DefaultDialer.Dial(a.wsURL()+proxy.ConnectPath, nil)
	if err == nil || r == nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new link on a draining proxy: got %v, want 503", err)
	}
}

// A request already on the old link when its client leaves it is answered
// there, and only then does the node close the link.
func TestDrainFinishesRequestsOnTheOldLink(t *testing.T) {
	shared, routes := bus.NewMemory(), registry.NewMemory()
	a := startProxy(t, proxy.Config{Node: "a", Bus: shared, Registry: routes})
	b := startProxy(t, proxy.Config{Node: "b", Bus: shared, Registry: routes})
	lb := startRelay(t, a.addr, b.addr)
	started := make(chan struct{}, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(400 * time.Millisecond)
		}
		io.WriteString(w, "done "+r.URL.Path)
	})
	ready := runClient(t, client.Config{
		Proxy: "ws://" + lb.addr(), Target: be.URL, Key: newKey(t),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	url := <-ready

	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := visitor(a).Get(url + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(body), err}
	}()
	<-started
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		a.Drain(dctx)
	}()
	// The client moves to b at once; its old link on a stays up for the
	// slow request, and new requests are served through b meanwhile.
	<-ready
	resp, err := visitor(a).Get(url + "/quick")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "done /quick" {
		t.Errorf("a request during the drain: got %d %q", resp.StatusCode, body)
	}
	if n := a.Stats().LinksActive.Load(); n != 1 {
		t.Errorf("node a has %d links while a request is open on the old one, want 1", n)
	}
	r := <-slow
	if r.err != nil || r.code != 200 || r.body != "done /slow" {
		t.Errorf("the request on the old link: got %d %q %v, want 200", r.code, r.body, r.err)
	}
	select {
	case <-drained:
	case <-time.After(3 * time.Second):
		t.Fatal("node a did not close the old link after its last request")
	}
	if n := a.Stats().LinksActive.Load(); n != 0 {
		t.Errorf("node a still has %d links after the drain", n)
	}
}

// A client whose new links keep failing while its drained link still
// serves backs off as usual, but once the drained link closes it has no
// link at all and tries again at once.
func TestClientReconnectsAtOnceWhenDrainedLinkCloses(t *testing.T) {
	shared, routes := bus.NewMemory(), registry.NewMemory()
	a := startProxy(t, proxy.Config{Node: "a", Bus: shared, Registry: routes})
	b := startProxy(t, proxy.Config{Node: "b", Bus: shared, Registry: routes})
	// A balancer without health checks: node a while it accepts.
	lb := startFailoverRelay(t, a.addr, b.addr)
	be := backend(t, echo)
	ready := runClient(t, client.Config{
		Proxy: "ws://" + lb.addr(), Target: be.URL, Key: newKey(t),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 10 * time.Second,
	})
	url := <-ready

	// Node a drains for 4 s: the client's new links land on a and are
	// refused, so its backoff grows to seconds.
	dctx, dcancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer dcancel()
	a.Drain(dctx)
	closed := time.Now()
	a.stop()
	select {
	case <-ready:
	case <-time.After(3 * time.Second):
		t.Fatal("client not registered again 3s after its drained link closed")
	}
	if d := time.Since(closed); d > time.Second {
		t.Errorf("client registered on node b %v after its drained link closed, want at once", d)
	}
	resp, err := visitor(b).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("through node b: got %d, want 200", resp.StatusCode)
	}
}

func TestNoGoroutineLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		p := startProxy(t, proxy.Config{RequestTimeout: 300 * time.Millisecond})
		defer p.stop()
		block := make(chan struct{})
		be := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				select {
				case <-block:
				case <-r.Context().Done():
				}
				return
			}
			io.Copy(w, r.Body)
		})
		defer be.Close()
		defer close(block)
		var clients []*testClient
		for i := 0; i < 5; i++ {
			clients = append(clients, startClient(t, p, be.URL, newKey(t)))
		}
		tr := visitor(p).Transport.(*http.Transport)
		v := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		for _, c := range clients {
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					path := "/"
					if i%3 == 0 {
						path = "/block" // times out: 504
					}
					resp, err := v.Post(c.url+path, "application/octet-stream", io.LimitReader(zeros{}, 100<<10))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
		}
		wg.Wait()
		for _, c := range clients {
			c.stop()
		}
		tr.CloseIdleConnections()
	}()
	leaktest.Check(t, base)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestClientStartedBeforeProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nothing listens on yet
	ready := runClient(t, client.Config{
		Proxy: "ws://" + addr, Target: backend(t, echo).URL, Key: newKey(t),
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second,
	})
	// Long enough that doubling backoff would have grown past a second.
	time.Sleep(1500 * time.Millisecond)
	startProxyOn(t, addr, proxy.Config{})
	up := time.Now()
	select {
	case <-ready:
		if took := time.Since(up); took > time.Second {
			t.Errorf("registered %v after the proxy started, want within 2x the minimum backoff", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client never registered")
	}
}
