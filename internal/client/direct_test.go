package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/leaktest"
)

// countingServer is an httptest server that counts the connections it
// accepts, and those it has seen closed.
func countingServer(t *testing.T, h http.HandlerFunc) (srv *httptest.Server, conns, closed *atomic.Int64) {
	t.Helper()
	conns, closed = new(atomic.Int64), new(atomic.Int64)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns, closed
}

func get(t *testing.T, rt http.RoundTripper, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, string(b)
}

// TestServiceTransportReuses: bodyless requests of every kind of framing
// (length, chunked, HEAD, 304) go over one connection, one after another.
func TestServiceTransportReuses(t *testing.T) {
	srv, conns, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		}
	})
	before := runtime.NumGoroutine()
	tr := NewServiceTransport(NewTransport())
	for i := 0; i < 5; i++ {
		if _, body := get(t, tr, "GET", srv.URL+"/"); body != "hello" {
			t.Fatalf("GET /: %q", body)
		}
		if _, body := get(t, tr, "GET", srv.URL+"/chunked"); body != "part one, part two" {
			t.Fatalf("GET /chunked: %q", body)
		}
		resp, body := get(t, tr, "HEAD", srv.URL+"/")
		if body != "" || resp.ContentLength != 5 {
			t.Fatalf("HEAD /: length %d, body %q", resp.ContentLength, body)
		}
		if resp, _ := get(t, tr, "GET", srv.URL+"/304"); resp.StatusCode != 304 {
			t.Fatalf("GET /304: %d", resp.StatusCode)
		}
		if resp, _ := get(t, tr, "DELETE", srv.URL+"/"); resp.StatusCode != 200 {
			t.Fatalf("DELETE /: %d", resp.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 25 requests, want 1", n)
	}
	tr.CloseIdleConnections()
	leaktest.Check(t, before) // the server's goroutine for the connection ends too
}

// TestServiceTransportWritesAsTransportDoes: the request goes out byte
// for byte as http.Transport writes it.
func TestServiceTransportWritesAsTransportDoes(t *testing.T) {
	var got [2]string
	for i, rt := range []http.RoundTripper{NewTransport(), NewServiceTransport(NewTransport())} {
		addr, heads := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		req, _ := http.NewRequest("POST", "http://"+addr+"/a%2Fb?q=1", http.NoBody)
		req.Host = "visitor.example"
		req.Header = http.Header{"User-Agent": {""}, "X-B": {"2"}, "X-A": {"1", "one"}}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		got[i] = <-heads
	}
	if got[0] != got[1] {
		t.Fatalf("http.Transport wrote\n%q\nthe direct path\n%q", got[0], got[1])
	}
}

// rawServer accepts connections and, for each request head it reads,
// sends it on heads and calls answer, which reports whether to keep the
// connection.
func rawServer(t *testing.T, answer func(br *bufio.Reader, c net.Conn) bool) (string, chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					heads <- head.String()
					if !answer(br, c) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), heads
}

// TestServiceTransportStaleConnection: a connection the service closed
// while it sat idle, without saying so, costs no request: a GET is sent
// again, and a bodyless POST finds the connection closed before it is
// sent.
func TestServiceTransportStaleConnection(t *testing.T) {
	addr, heads := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false // closes with no Connection: close
	})
	tr := NewServiceTransport(NewTransport())
	defer tr.CloseIdleConnections()
	for i, method := range []string{"GET", "GET", "POST", "HEAD", "POST"} {
		resp, body := get(t, tr, method, "http://"+addr+"/")
		if resp.StatusCode != 200 || method != "HEAD" && body != "ok" {
			t.Fatalf("request %d (%s): %d %q", i, method, resp.StatusCode, body)
		}
		<-heads
		time.Sleep(20 * time.Millisecond) // the close reaches the client
	}
	if n := len(heads); n != 0 {
		t.Fatalf("%d requests reached the service twice", n)
	}
}

// TestServiceTransportNoRetryAfterAnswer: a request whose answer broke
// off is not sent again.
func TestServiceTransportNoRetryAfterAnswer(t *testing.T) {
	addr, heads := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	tr := NewServiceTransport(NewTransport())
	defer tr.CloseIdleConnections()
	get(t, tr, "GET", "http://"+addr+"/")
	<-heads
	addr2, heads2 := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-")
		return false
	})
	req, _ := http.NewRequest("GET", "http://"+addr2+"/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("a response cut in its head was taken")
	}
	<-heads2
	time.Sleep(50 * time.Millisecond)
	if n := len(heads2); n != 0 {
		t.Fatalf("the request was sent %d more times", n)
	}
}

// TestServiceTransportSkipsInformational: 1xx answers before the final
// one are skipped; a flood of them fails the request.
func TestServiceTransportSkipsInformational(t *testing.T) {
	addr, _ := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	tr := NewServiceTransport(NewTransport())
	defer tr.CloseIdleConnections()
	if resp, body := get(t, tr, "GET", "http://"+addr+"/"); resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Link") != "" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	flood, _ := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		for range 10 {
			fmt.Fprint(c, "HTTP/1.1 103 Early Hints\r\n\r\n")
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	req, _ := http.NewRequest("GET", "http://"+flood+"/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "informational") {
		t.Fatalf("ten 103s: %v", err)
	}
}

// TestServiceTransportHeaderCap: a header block past the cap fails the
// request instead of growing the client.
func TestServiceTransportHeaderCap(t *testing.T) {
	addr, _ := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Big: " + strings.Repeat("a", 1000) + "\r\n"
		for range maxResponseHeader/len(line) + 10 {
			if _, err := io.WriteString(c, line); err != nil {
				return false
			}
		}
		return false
	})
	tr := NewServiceTransport(NewTransport())
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("got %v, want %v", err, errHeaderTooLarge)
	}
}

// stallingServer answers / at once; /stream with "first" and then
// nothing more, and /wait with nothing at all, until the request ends.
func stallingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	release := make(chan struct{})
	srv, conns, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			return
		case "/stream":
			w.Write([]byte("first"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close, which waits for handlers
	return srv, conns
}

// TestServiceTransportCancel: cancelling a request breaks off the wait
// for its answer and the read of its body at once, and the connection is
// not used again; the same when the request's context is a stream's that
// the proxy abandons.
func TestServiceTransportCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, func())
	}{
		{"a context", func() (context.Context, func()) {
			return context.WithCancel(context.Background())
		}},
		{"a stream's", func() (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(context.Background())
			st := &stream{ctx: &streamCtx{Context: ctx}, end: cancel}
			return st.ctx, st.cancel
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := stallingServer(t)
			tr := NewServiceTransport(NewTransport())
			defer tr.CloseIdleConnections()

			ctx, cancel := tc.ctx()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/wait", nil)
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled while waiting: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("the cancel took %v", d)
			}

			ctx, cancel = tc.ctx()
			req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/stream", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			time.AfterFunc(100*time.Millisecond, cancel)
			if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled while reading the body: %v", err)
			}
			resp.Body.Close()

			get(t, tr, "GET", srv.URL+"/")
			if n := conns.Load(); n != 3 {
				t.Fatalf("%d connections, want 3 (a cancelled one is not reused)", n)
			}

			// A request on a context that has ended goes nowhere.
			ctx, cancel = tc.ctx()
			cancel()
			req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
			if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
				t.Fatalf("on an ended context: %v", err)
			}
		})
	}
}

// TestServiceTransportEarlyClose: a body closed before its end closes
// the connection without waiting for the rest.
func TestServiceTransportEarlyClose(t *testing.T) {
	srv, conns := stallingServer(t)
	tr := NewServiceTransport(NewTransport())
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", srv.URL+"/stream", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { resp.Body.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close waited for the rest of the body")
	}
	req, _ = http.NewRequest("GET", srv.URL+"/", nil)
	if resp, err = tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestServiceTransportConnectionClose: an answer with Connection: close
// or from HTTP/1.0 leaves its connection unused; idle connections are
// closed after IdleConnTimeout.
func TestServiceTransportConnectionClose(t *testing.T) {
	srv, conns, closes := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("x"))
	})
	base := NewTransport()
	base.IdleConnTimeout = 100 * time.Millisecond
	tr := NewServiceTransport(base)
	get(t, tr, "GET", srv.URL+"/close")
	get(t, tr, "GET", srv.URL+"/close")
	get(t, tr, "GET", srv.URL+"/")
	get(t, tr, "GET", srv.URL+"/")
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for closes.Load() != 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := closes.Load(); n != 3 {
		t.Fatalf("%d connections closed after the idle timeout, want 3", n)
	}
}

// TestServiceTransportFallsBack: requests with a body, and TLS services,
// go through the base transport and still work.
func TestServiceTransportFallsBack(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) }
	plain, _, _ := countingServer(t, echo)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(echo))
	defer tlsSrv.Close()
	base := NewTransport()
	base.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig
	tr := NewServiceTransport(base)
	defer tr.CloseIdleConnections()
	for _, u := range []string{plain.URL, tlsSrv.URL} {
		req, _ := http.NewRequest("POST", u+"/", strings.NewReader("a body"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "a body" {
			t.Fatalf("%s: %q", u, b)
		}
		if _, body := get(t, tr, "GET", u+"/"); body != "" {
			t.Fatalf("%s: GET: %q", u, body)
		}
	}
}

// TestServiceTransportUnaskedBytes: bytes a service sends after an answer
// that has no body by its nature (to a HEAD, a 204 or a 304), such as a
// body it should not have sent, are never read as the next request's
// answer: the connection is checked before it is used again.
func TestServiceTransportUnaskedBytes(t *testing.T) {
	addr, heads := rawServer(t, func(br *bufio.Reader, c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 204 No Content\r\n\r\n")
		time.Sleep(30 * time.Millisecond) // apart from the head, so not read with it
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
		return true
	})
	tr := NewServiceTransport(NewTransport())
	defer tr.CloseIdleConnections()
	for i := range 3 {
		resp, body := get(t, tr, "GET", "http://"+addr+"/")
		if resp.StatusCode != http.StatusNoContent || body != "" {
			t.Fatalf("request %d: got %d %q, want the service's 204 each time", i, resp.StatusCode, body)
		}
		<-heads
		time.Sleep(60 * time.Millisecond) // the unasked bytes arrive; well within reuseCheckAfter
	}
}

// TestServiceTransportSweepsClosedIdle: an idle connection the service
// closed is closed on our side too within a sweep, with no request
// coming to find it; one the service keeps open stays pooled until its
// idle timeout.
func TestServiceTransportSweepsClosedIdle(t *testing.T) {
	answer := func(keep bool) func(*bufio.Reader, net.Conn) bool {
		return func(_ *bufio.Reader, c net.Conn) bool {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return keep
		}
	}
	closing, _ := rawServer(t, answer(false))
	keeping, _ := rawServer(t, answer(true))
	base := NewTransport()
	base.IdleConnTimeout = time.Second // a sweep every 500 ms
	tr := NewServiceTransport(base)
	defer tr.CloseIdleConnections()
	for _, addr := range []string{closing, keeping} {
		if resp, body := get(t, tr, "GET", "http://"+addr+"/"); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("%s: %d %q", addr, resp.StatusCode, body)
		}
	}
	pooled := func(addr string) int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.idle[addr])
	}
	if pooled(closing) != 1 || pooled(keeping) != 1 {
		t.Fatalf("pooled after the answers: %d and %d, want 1 each", pooled(closing), pooled(keeping))
	}
	time.Sleep(800 * time.Millisecond) // one sweep, within the idle timeout
	if n := pooled(closing); n != 0 {
		t.Errorf("a connection the service closed is still pooled after a sweep (%d)", n)
	}
	if n := pooled(keeping); n != 1 {
		t.Errorf("an open connection within its idle timeout was dropped (%d pooled)", n)
	}
	time.Sleep(time.Second) // past the idle timeout
	if n := pooled(keeping); n != 0 {
		t.Errorf("a connection idle past its timeout is still pooled (%d)", n)
	}
}
