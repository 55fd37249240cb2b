package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/leaktest"
	"keyhole/internal/proxy"
	"keyhole/tunnel"
)

// helloHandler is a service published in process: a page at /, a stream
// at /stream that sends its second piece only once told to, and a
// WebSocket echo at /ws.
func helloHandler(next <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from keyhole, %s\n", r.Header.Get("X-Forwarded-For"))
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "first\n")
		rc.Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})
	// Any origin may open the echo: it holds nothing of a visitor.
	up := websocket.Upgrader{Subprotocols: []string{"chat.v1"}, CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ""), time.Now().Add(time.Second))
				}
				return
			}
			if ws.WriteMessage(typ, msg) != nil {
				return
			}
		}
	})
	return mux
}

// publish runs a tunnel for h until the returned stop is called, and
// waits for its URL.
func publish(t *testing.T, p *testProxy, h http.Handler) (url string, stop func() error) {
	t.Helper()
	tn, err := tunnel.New(tunnel.Config{Proxy: p.wsURL(), Key: newKey(t), Handler: h,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); runErr = tn.Run(ctx) }()
	stop = func() error {
		cancel()
		select {
		case <-done:
			return runErr
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of its context's end")
			return nil
		}
	}
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-tn.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("tunnel did not register within 5s")
	}
	return tn.URL(), stop
}

// TestPublishHandler: an http.Handler published with the tunnel package
// and no listening port answers plain requests, streams, and WebSockets
// from gorilla and from Node's ws, through a real proxy; ending the
// tunnel's context ends the link and every goroutine it started.
func TestPublishHandler(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	hc := visitor(p)
	before := runtime.NumGoroutine()
	listening := listeners(t)
	next := make(chan struct{})
	url, stop := publish(t, p, helloHandler(next))
	if got := listeners(t); got != listening {
		t.Errorf("listening sockets: got %d with the tunnel up, want %d as before", got, listening)
	}

	req, _ := http.NewRequest("GET", url+"/", nil)
	resp, body := do(t, hc, req)
	if resp.StatusCode != 200 || body != "hello from keyhole, 127.0.0.1\n" {
		t.Errorf("GET /: got %d %q, want 200 %q", resp.StatusCode, body, "hello from keyhole, 127.0.0.1\n")
	}
	checkStream(t, hc, url, next)
	checkGorilla(t, p, url)
	checkNode(t, p, url)

	ws, _ := websocketDial(t, p, url+"/ws")
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a WebSocket open when the tunnel stopped: got %v, want it closed", err)
	}
	ws.Close()
	resp, _ = do(t, hc, req)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / after the tunnel stopped: got %d, want 404", resp.StatusCode)
	}
	hc.CloseIdleConnections()
	leaktest.Check(t, before)
}

// checkStream reads the first piece of a stream before its handler
// writes the second.
func checkStream(t *testing.T, hc *http.Client, url string, next chan<- struct{}) {
	t.Helper()
	resp, err := hc.Get(url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("stream: got %q (%v), want the first piece before the second is written", buf, err)
	}
	close(next)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Errorf("stream: got %q after the first piece, want %q", rest, "second\n")
	}
}

func websocketDial(t *testing.T, p *testProxy, url string) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, p.addr) },
		Subprotocols: []string{"chat.v1"}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(strings.Replace(url, "http://", "ws://", 1), nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, resp
}

// checkGorilla echoes a text and a binary message, and a close code.
func checkGorilla(t *testing.T, p *testProxy, url string) {
	t.Helper()
	ws, _ := websocketDial(t, p, url+"/ws")
	if ws.Subprotocol() != "chat.v1" {
		t.Errorf("subprotocol: got %q, want chat.v1", ws.Subprotocol())
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, m := range []struct {
		typ  int
		data string
	}{{websocket.TextMessage, "héllo"}, {websocket.BinaryMessage, "\x00\xff\x01"}} {
		if err := ws.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := ws.ReadMessage()
		if err != nil || typ != m.typ || string(got) != m.data {
			t.Errorf("echo: got %d %q (%v), want %d %q", typ, got, err, m.typ, m.data)
		}
	}
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 {
		t.Errorf("close: got %v, want the handler's 4001", err)
	}
}

// checkNode runs Node's ws client against the echo.
func checkNode(t *testing.T, p *testProxy, url string) {
	t.Helper()
	out := runNodeWS(t, "wsclient.js", url+"/ws", p.addr)
	var seen struct {
		Error    string
		Protocol string
		Messages []struct{ Hex string }
		Close    struct{ Code int }
	}
	if err := json.Unmarshal(out, &seen); err != nil || seen.Error != "" {
		t.Fatalf("node printed %s (%v)", out, err)
	}
	want := []string{hex.EncodeToString([]byte("héllo from node ✓")), "00ff01fec328"}
	if len(seen.Messages) != len(want) || seen.Messages[0].Hex != want[0] || seen.Messages[1].Hex != want[1] {
		t.Errorf("node: got messages %+v, want %v", seen.Messages, want)
	}
	if seen.Protocol != "chat.v1" || seen.Close.Code != 4001 {
		t.Errorf("node: got subprotocol %q and close %d, want chat.v1 and 4001", seen.Protocol, seen.Close.Code)
	}
}

// listeners counts this process's listening TCP sockets.
func listeners(t *testing.T) int {
	t.Helper()
	inodes := make(map[string]bool)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 && fs[3] == "0A" {
				inodes[fs[9]] = true
			}
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		l, _ := os.Readlink("/proc/self/fd/" + fd.Name())
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			n++
		}
	}
	return n
}
