package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/leaktest"
	"keyhole/internal/proxy"
)

// wsEcho is a private WebSocket service: it echoes every message with its
// type, and reports each socket's close on closed.
type wsEcho struct {
	srv    *httptest.Server
	closed chan *websocket.CloseError
	seen   chan http.Header // handshake headers as the service saw them
}

func startWSEcho(t *testing.T) *wsEcho {
	t.Helper()
	e := &wsEcho{closed: make(chan *websocket.CloseError, 256), seen: make(chan http.Header, 256)}
	up := websocket.Upgrader{Subprotocols: []string{"chat.v2", "chat.v1"}, CheckOrigin: func(*http.Request) bool { return true }}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, http.Header{"Set-Cookie": {"ws=1; Path=/", "other=2"}})
		if err != nil {
			return
		}
		defer ws.Close()
		e.seen <- r.Header
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					e.closed <- ce
				} else {
					e.closed <- &websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: err.Error()}
				}
				return
			}
			if err := ws.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// wsDial opens a visitor WebSocket through the proxy.
func wsDial(t *testing.T, p *testProxy, url string, h http.Header, protocols ...string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, p.addr)
		},
		Subprotocols:     protocols,
		HandshakeTimeout: 10 * time.Second,
	}
	ws, resp, err := d.Dial(strings.Replace(url, "http://", "ws://", 1)+"/socket", h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, resp
}

func wsSetup(t *testing.T) (*testProxy, *wsEcho, *testClient) {
	t.Helper()
	p := startProxy(t, proxy.Config{})
	e := startWSEcho(t)
	c := startClient(t, p, e.srv.URL, newKey(t))
	return p, e, c
}

func TestWebSocketHandshakeFidelity(t *testing.T) {
	p, e, c := wsSetup(t)
	ws, resp := wsDial(t, p, c.url, http.Header{
		"Origin": {"https://app.example"},
		"Cookie": {"session=abc"},
	}, "chat.v1", "chat.v0")
	seen := <-e.seen
	checks := []struct{ name, got, want string }{
		{"subprotocol", ws.Subprotocol(), "chat.v1"},
		{"Set-Cookie back", strings.Join(resp.Header.Values("Set-Cookie"), "|"), "ws=1; Path=/|other=2"},
		{"extensions", resp.Header.Get("Sec-Websocket-Extensions"), ""},
		{"service saw Origin", seen.Get("Origin"), "https://app.example"},
		{"service saw Cookie", seen.Get("Cookie"), "session=abc"},
		{"service saw offers", strings.Join(seen.Values("Sec-Websocket-Protocol"), ","), "chat.v1, chat.v0"},
		{"service saw X-Forwarded-For", seen.Get("X-Forwarded-For"), "127.0.0.1"},
		{"service saw no extensions", seen.Get("Sec-Websocket-Extensions"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestWebSocketMessagesExact(t *testing.T) {
	p, _, c := wsSetup(t)
	ws, _ := wsDial(t, p, c.url, nil)
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	msgs := []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("héllo ✓ wörld")},
		{websocket.TextMessage, []byte{}},
		{websocket.BinaryMessage, []byte{0xff, 0xfe, 0x00, 0xc3, 0x28}}, // not UTF-8
		{websocket.BinaryMessage, random(64 << 10)},
		{websocket.BinaryMessage, random(64<<10 + 1)},
		{websocket.BinaryMessage, random(400 << 10)},
		{websocket.BinaryMessage, random(512000)},
		{websocket.TextMessage, bytes.Repeat([]byte("ü"), 100000)},
	}
	for i, m := range msgs {
		if err := ws.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Errorf("message %d: got type %d with %d bytes, want type %d with %d bytes, byte-exact", i, typ, len(got), m.typ, len(m.data))
		}
	}
}

func TestWebSocketOrderOfThousands(t *testing.T) {
	p, _, c := wsSetup(t)
	ws, _ := wsDial(t, p, c.url, nil)
	const n = 5000
	go func() {
		for i := 0; i < n; i++ {
			typ := websocket.TextMessage
			if i%2 == 1 {
				typ = websocket.BinaryMessage
			}
			if ws.WriteMessage(typ, []byte(fmt.Sprintf("message %d", i))) != nil {
				return
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < n; i++ {
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		wantType := websocket.TextMessage
		if i%2 == 1 {
			wantType = websocket.BinaryMessage
		}
		if want := fmt.Sprintf("message %d", i); string(got) != want || typ != wantType {
			t.Fatalf("got %q (type %d), want %q (type %d)", got, typ, want, wantType)
		}
	}
}

func TestWebSocketFragmentedAndPing(t *testing.T) {
	p, _, c := wsSetup(t)
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, p.addr)
		},
		WriteBufferSize: 512, // a 10 KiB message goes out in many fragments
	}
	ws, _, err := d.Dial(strings.Replace(c.url, "http://", "ws://", 1)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	pong := make(chan string, 1)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 1024)
	w, _ := ws.NextWriter(websocket.BinaryMessage)
	for i := 0; i < len(msg); i += 700 {
		w.Write(msg[i:min(i+700, len(msg))])
	}
	w.Close()
	_, got, err := ws.ReadMessage() // also runs the pong handler
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("got %d bytes, want the %d-byte fragmented message whole", len(got), len(msg))
	}
	select {
	case s := <-pong:
		if s != "are you there" {
			t.Errorf("got pong %q, want the ping's payload", s)
		}
	case <-time.After(2 * time.Second):
		t.Error("no pong: control frames must be answered hop by hop")
	}
}

func TestWebSocketTooBigClosesOnlyThatSocket(t *testing.T) {
	p, e, c := wsSetup(t)
	big, _ := wsDial(t, p, c.url, nil)
	other, _ := wsDial(t, p, c.url, nil)
	<-e.seen
	<-e.seen
	if err := big.WriteMessage(websocket.BinaryMessage, make([]byte, 512001)); err != nil {
		t.Fatal(err)
	}
	big.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := big.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("visitor: got %v, want close 1009", err)
	}
	select {
	case ce := <-e.closed:
		if ce.Code != websocket.CloseMessageTooBig {
			t.Errorf("service: got close %d, want 1009", ce.Code)
		}
	case <-time.After(5 * time.Second):
		t.Error("service socket not closed")
	}
	// The other socket on the same tunnel is untouched.
	if err := other.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := other.ReadMessage(); err != nil || string(got) != "still here" {
		t.Errorf("other socket: got %q, %v", got, err)
	}
}

func TestWebSocketCloseCodesBothWays(t *testing.T) {
	t.Run("visitor closes", func(t *testing.T) {
		p, e, c := wsSetup(t)
		ws, _ := wsDial(t, p, c.url, nil)
		<-e.seen
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "visitor says bye"), time.Now().Add(time.Second))
		select {
		case ce := <-e.closed:
			if ce.Code != 4001 || ce.Text != "visitor says bye" {
				t.Errorf("service: got close %d %q, want 4001 %q", ce.Code, ce.Text, "visitor says bye")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("service saw no close")
		}
		// The reply to the visitor's close is the service's own.
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Errorf("visitor: got %v, want the close echoed with 4001", err)
		}
	})
	t.Run("service closes", func(t *testing.T) {
		p := startProxy(t, proxy.Config{})
		be := backend(t, func(w http.ResponseWriter, r *http.Request) {
			ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "service done"), time.Now().Add(time.Second))
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			ws.ReadMessage()
		})
		c := startClient(t, p, be.URL, newKey(t))
		ws, _ := wsDial(t, p, c.url, nil)
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4002 || ce.Text != "service done" {
			t.Errorf("visitor: got %v, want close 4002 %q", err, "service done")
		}
	})
	t.Run("no status", func(t *testing.T) {
		p, e, c := wsSetup(t)
		ws, _ := wsDial(t, p, c.url, nil)
		<-e.seen
		ws.WriteControl(websocket.CloseMessage, []byte{}, time.Now().Add(time.Second))
		select {
		case ce := <-e.closed:
			if ce.Code != websocket.CloseNoStatusReceived {
				t.Errorf("service: got close %d, want 1005 (no status)", ce.Code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("service saw no close")
		}
	})
}

func TestWebSocketRefusalRelayed(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	body := strings.Repeat("not allowed here. ", 300) // longer than any handshake buffer
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Why", "no token")
		w.Header()["Set-Cookie"] = []string{"a=1", "b=2"}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, body)
	})
	c := startClient(t, p, be.URL, newKey(t))
	req, _ := http.NewRequest("GET", c.url+"/socket", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := visitor(p).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Why") != "no token" ||
		strings.Join(resp.Header.Values("Set-Cookie"), "|") != "a=1|b=2" || string(got) != body {
		t.Errorf("got %d %v with %d body bytes, want 403 with X-Why, both cookies and the %d-byte body", resp.StatusCode, resp.Header, len(got), len(body))
	}
}

func TestWebSocketManySockets(t *testing.T) {
	p, _, c := wsSetup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, p.addr)
			}}
			ws, _, err := d.Dial(strings.Replace(c.url, "http://", "ws://", 1)+"/", nil)
			if err != nil {
				errs <- err
				return
			}
			defer ws.Close()
			for j := 0; j < 20; j++ {
				want := fmt.Sprintf("socket %d message %d", i, j)
				ws.WriteMessage(websocket.TextMessage, []byte(want))
				_, got, err := ws.ReadMessage()
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("socket %d: got %q, %v, want %q", i, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWebSocketSlowReaderDoesNotStallOthers(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	var written atomic.Int64 // bytes the flooding service got rid of
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if r.URL.Path == "/flood" {
			chunk := make([]byte, 32<<10)
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				ws.SetWriteDeadline(deadline)
				if ws.WriteMessage(websocket.BinaryMessage, chunk) != nil {
					return
				}
				written.Add(int64(len(chunk)))
			}
			return
		}
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil || ws.WriteMessage(typ, msg) != nil {
				return
			}
		}
	})
	c := startClient(t, p, be.URL, newKey(t))
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, p.addr)
	}, ReadBufferSize: 1024}
	base := strings.Replace(c.url, "http://", "ws://", 1)
	slow, _, err := d.Dial(base+"/flood", nil) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _, err := d.Dial(base+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	for i := 0; i < 200; i++ {
		fast.SetReadDeadline(time.Now().Add(5 * time.Second))
		fast.WriteMessage(websocket.TextMessage, []byte("ping"))
		if _, _, err := fast.ReadMessage(); err != nil {
			t.Fatalf("echo %d on the other socket: %v", i, err)
		}
	}
	// The flood is held back at its source: what the service managed to
	// write stops growing once socket buffers and one window are full.
	var prev int64 = -1
	waitFor(t, "the flooding service to be held back", func() bool {
		time.Sleep(300 * time.Millisecond)
		n := written.Load()
		stalled := n == prev
		prev = n
		return stalled
	})
	if n := written.Load(); n > 64<<20 {
		t.Errorf("service wrote %d MiB into a socket nobody reads, want it held back", n>>20)
	}
	if n := p.Stats().StreamOverflow.Load(); n != 0 {
		t.Errorf("StreamOverflow: got %d, want 0 (flow control, not drops)", n)
	}
	// The slow socket is still intact: its messages arrive whole, in order.
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := slow.ReadMessage(); err != nil || len(msg) != 32<<10 {
		t.Errorf("slow socket: got %d bytes, %v; want a whole 32 KiB message", len(msg), err)
	}
}

func TestWebSocketJSONRPC(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var req struct {
			JSONRPC string `json:"jsonrpc"`
			Method  string `json:"method"`
			ID      int    `json:"id"`
		}
		if ws.ReadJSON(&req) != nil || req.Method != "eth_subscribe" {
			return
		}
		ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": "0x1"})
		ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "method": "eth_subscription", "params": map[string]any{"subscription": "0x1", "result": map[string]any{"number": "0x10"}}})
		ws.ReadMessage()
	})
	c := startClient(t, p, be.URL, newKey(t))
	ws, _ := wsDial(t, p, c.url, nil)
	ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "eth_subscribe", "params": []string{"newHeads"}})
	var resp struct {
		ID     int    `json:"id"`
		Result string `json:"result"`
	}
	if err := ws.ReadJSON(&resp); err != nil || resp.ID != 7 || resp.Result != "0x1" {
		t.Fatalf("got response %+v, %v; want id 7 result 0x1", resp, err)
	}
	var note struct {
		Method string `json:"method"`
		Params struct {
			Result struct {
				Number string `json:"number"`
			} `json:"result"`
		} `json:"params"`
	}
	if err := ws.ReadJSON(&note); err != nil || note.Method != "eth_subscription" || note.Params.Result.Number != "0x10" {
		t.Fatalf("got notification %+v, %v", note, err)
	}
}

func TestWebSocketTeardownWhenClientGoes(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		p := startProxy(t, proxy.Config{})
		defer p.stop()
		e := startWSEcho(t)
		defer e.srv.Close()
		c := startClient(t, p, e.srv.URL, newKey(t))
		var socks []*websocket.Conn
		for i := 0; i < 10; i++ {
			ws, _ := wsDial(t, p, c.url, nil)
			socks = append(socks, ws)
			<-e.seen
		}
		c.stop()
		for i, ws := range socks {
			ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, _, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Errorf("socket %d: got %v, want close 1001 when the client went away", i, err)
			}
			ws.Close()
		}
		for range socks {
			select {
			case <-e.closed:
			case <-time.After(3 * time.Second):
				t.Fatal("a service socket stayed open after its client stopped")
			}
		}
		waitFor(t, "no active WebSockets", func() bool { return p.Stats().WebSocketsActive.Load() == 0 })
	}()
	leaktest.Check(t, base)
}

// With HostOnlyCookies, a service's cookie for the proxy's domain (which
// every other tunnel would receive) reaches the visitor as a cookie for the
// tunnel's own host, on plain responses and WebSocket handshakes alike;
// without it, every Set-Cookie is passed as it is.
func TestHostOnlyCookies(t *testing.T) {
	cookies := []string{"a=1; Domain=localhost; Path=/", "b=2; HttpOnly", "c=3; domain=.LOCALHOST; Secure"}
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := http.Header{"Set-Cookie": cookies}
		if r.Header.Get("Upgrade") != "" {
			ws, err := (&websocket.Upgrader{}).Upgrade(w, r, h)
			if err == nil {
				ws.Close()
			}
			return
		}
		w.Header()["Set-Cookie"] = cookies
	})
	for _, isolate := range []bool{false, true} {
		p := startProxy(t, proxy.Config{HostOnlyCookies: isolate})
		c := startClient(t, p, be.URL, newKey(t))
		want := cookies
		if isolate {
			want = []string{"a=1; Path=/", "b=2; HttpOnly", "c=3; Secure"}
		}
		resp, err := visitor(p).Get(c.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header["Set-Cookie"]; !slices.Equal(got, want) {
			t.Errorf("HostOnlyCookies %v, HTTP: got %q, want %q", isolate, got, want)
		}
		_, wsResp := wsDial(t, p, c.url, nil)
		if got := wsResp.Header["Set-Cookie"]; !slices.Equal(got, want) {
			t.Errorf("HostOnlyCookies %v, WebSocket: got %q, want %q", isolate, got, want)
		}
		if n, wantN := p.Stats().CookieDomains.Load(), map[bool]int64{false: 0, true: 4}[isolate]; n != wantN {
			t.Errorf("HostOnlyCookies %v: CookieDomains %d, want %d", isolate, n, wantN)
		}
	}
}
