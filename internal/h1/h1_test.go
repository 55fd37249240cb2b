package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// handler answers by path, so each case below shows one way a handler
// frames its answer.
func handler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.URL.Path {
	case "/short": // no length given, written whole: net/http adds one
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	case "/sniff": // no Content-Type: sniffed from the body
		io.WriteString(w, "<html><body>hi</body></html>")
	case "/nosniff": // a present but nil field stops it, and the Date
		h["Content-Type"] = nil
		h["Date"] = nil
		io.WriteString(w, "<html></html>")
	case "/long": // past what is held back: chunked
		w.Write([]byte(strings.Repeat("x", 5000)))
	case "/length":
		h.Set("Content-Length", "5")
		io.WriteString(w, "12345")
	case "/short-length": // declares more than it writes: the connection closes
		h.Set("Content-Length", "10")
		io.WriteString(w, "12345")
	case "/over-length":
		h.Set("Content-Length", "3")
		_, err := io.WriteString(w, "12345")
		io.WriteString(w, fmt.Sprint(err == http.ErrContentLength))
	case "/flush": // streamed: chunked, in two chunks
		io.WriteString(w, "one")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "two")
	case "/204":
		h.Set("Content-Length", "9")
		w.WriteHeader(204)
	case "/304":
		h.Set("Content-Length", "1234")
		h.Set("Etag", `"x"`)
		w.WriteHeader(304)
		_, err := io.WriteString(w, "x")
		if err != http.ErrBodyNotAllowed {
			panic(err)
		}
	case "/103":
		h.Add("Link", "</a.css>; rel=preload")
		w.WriteHeader(103)
		h.Set("Content-Length", "2")
		io.WriteString(w, "ok")
	case "/close": // the handler asks to close
		h.Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/empty":
	case "/status":
		w.WriteHeader(599)
	case "/fields": // a line break in a value, an invalid name
		h.Set("X-Split", "a\r\nInjected: yes")
		h["Bad Name"] = []string{"v"}
		h.Set("X-Space", "  padded  ")
	case "/abort":
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	case "/te-identity":
		h.Set("Transfer-Encoding", "identity")
		io.WriteString(w, strings.Repeat("y", 3000))
	case "/te-and-length":
		h.Set("Transfer-Encoding", "chunked")
		h.Set("Content-Length", "4")
		io.WriteString(w, strings.Repeat("z", 3000))
	default:
		fmt.Fprintf(w, "%s %s %s host=%q close=%v remote-set=%v fields=%v", r.Method, r.URL, r.Proto, r.Host, r.Close, r.RemoteAddr != "", r.Header)
	}
}

// serve starts a server on a loopback port and returns its address.
func serve(t *testing.T, fast bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, ErrorLog: discardLog}
	if !fast {
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
		return ln.Addr().String()
	}
	s := NewServer(hs, ln)
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

// exchange sends raw on a new connection and returns all the server
// answers until it closes the connection or is quiet for 300 ms, with
// the Date field's value blanked.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				got = append(got, "<open>"...)
			} else {
				got = append(got, "<closed>"...)
			}
			break
		}
	}
	return dates.ReplaceAllString(string(got), "Date: <date>\r\n")
}

var dates = regexp.MustCompile(`Date: [^\r]*\r\n`)

// TestSameAsNetHTTP sends the same bytes to the fast path and to a plain
// net/http server with the same handler, and wants the same bytes back:
// every way of framing an answer, requests the fast path hands over, and
// malformed ones net/http refuses.
func TestSameAsNetHTTP(t *testing.T) {
	fast, plain := serve(t, true), serve(t, false)
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: a.example\r\n\r\n" }
	cases := map[string]string{
		"echo":            "GET /echo?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nX-A: 1\r\nX-A: 2\r\nAccept: */*\r\n\r\n",
		"head":            "HEAD /short HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"head-length":     "HEAD /length HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"head-long":       "HEAD /long HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"short":           get("/short"),
		"sniff":           get("/sniff"),
		"nosniff":         get("/nosniff"),
		"long":            get("/long"),
		"length":          get("/length"),
		"short-length":    get("/short-length"),
		"over-length":     get("/over-length"),
		"flush":           get("/flush"),
		"204":             get("/204"),
		"304":             get("/304"),
		"103":             get("/103"),
		"close":           get("/close"),
		"empty":           get("/empty"),
		"status":          get("/status"),
		"fields":          get("/fields"),
		"abort":           get("/abort"),
		"te-identity":     get("/te-identity"),
		"te-and-length":   get("/te-and-length"),
		"asks-close":      "GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
		"pipelined":       get("/short") + get("/length") + "HEAD /long HTTP/1.1\r\nHost: a.example\r\n\r\n" + get("/echo"),
		"then-post":       get("/short") + "POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc" + get("/length"),
		"bare-lf":         "GET /echo HTTP/1.1\nHost: a.example\n\n",
		"http10":          "GET /echo HTTP/1.0\r\nHost: a.example\r\n\r\n",
		"absolute":        "GET http://b.example/echo HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"no-host":         "GET /echo HTTP/1.1\r\nX: y\r\n\r\n",
		"two-hosts":       "GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
		"bad-host":        "GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n",
		"bad-name":        "GET /echo HTTP/1.1\r\nHost: a.example\r\nBad Name: v\r\n\r\n",
		"bad-value":       "GET /echo HTTP/1.1\r\nHost: a.example\r\nX: a\x00b\r\n\r\n",
		"te-and-cl":       "GET /echo HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"get-with-length": "GET /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\n\r\nhi",
		"expect":          "GET /echo HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n\r\n",
		"upgrade":         "GET /echo HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"garbage":         "HELLO\r\n\r\n",
		"leading-crlf":    "\r\n" + get("/echo"),
		"long-head":       "GET /echo HTTP/1.1\r\nHost: a.example\r\nX-Long: " + strings.Repeat("v", 6000) + "\r\n\r\n",
		"spaces":          "GET  /echo HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"folded":          "GET /echo HTTP/1.1\r\nHost: a.example\r\nX: a\r\n b\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := exchange(t, plain, raw)
			got := exchange(t, fast, raw)
			if got != want {
				t.Errorf("fast path answered\n%q\nnet/http answered\n%q", got, want)
			}
		})
	}
}

// TestVisitorLeaves: a request still running when its visitor closes the
// connection has its context canceled.
func TestVisitorLeaves(t *testing.T) {
	canceled := make(chan time.Duration, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			canceled <- time.Since(start)
		case <-time.After(5 * time.Second):
			canceled <- -1
		}
	})}, ln)
	go s.Serve()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if d := <-canceled; d < 0 || d > time.Second {
		t.Errorf("the request's context ended after %v, want soon after the visitor left (-1: never)", d)
	}
}

// TestShutdown: Shutdown closes idle connections, lets a request under
// way finish (with Connection: close), and returns once it has.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})}, ln)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	idle, _ := net.Dial("tcp", ln.Addr().String())
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	io.ReadAll(resp.Body)
	busy, _ := net.Dial("tcp", ln.Addr().String())
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection at shutdown: read got %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request under way", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, err = http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Errorf("request under way at shutdown: got %v %v, want 200 with Connection: close", resp, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: got %v, want http.ErrServerClosed", err)
	}
}

var discardLog = log.New(io.Discard, "", 0)

// TestUnwrapAfterHandover: a handler that hijacks a connection the fast
// path handed over gets it wrapped, and Unwrap gives back the socket
// itself, so that writev and raw reads work on it.
func TestUnwrapAfterHandover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		_, wrapped := c.(*net.TCPConn)
		_, bare := Unwrap(c).(*net.TCPConn)
		rest, _ := brw.Reader.Peek(brw.Reader.Buffered())
		fmt.Fprintf(c, "wrapped-is-tcp=%v unwrapped-is-tcp=%v buffered=%q", wrapped, bare, rest)
	})}, ln)
	go s.Serve()
	defer s.Close()
	// An upgrade, then bytes the handler's reader holds already.
	got := exchange(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nearly")
	if want := `wrapped-is-tcp=false unwrapped-is-tcp=true buffered="early"<closed>`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestIdleTimeout: a connection kept busy outlives its idle timeout, the
// deadline moving on with its requests though not at each one, and is
// closed once it has been idle for about that long.
func TestIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const idle = 1500 * time.Millisecond
	hs := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: idle, IdleTimeout: idle, WriteTimeout: idle, ErrorLog: discardLog}
	s := NewServer(hs, ln)
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() error {
		if _, err := io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	start := time.Now()
	for time.Since(start) < 3*idle {
		if err := get(); err != nil {
			t.Fatalf("after %v of requests every 100 ms: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	last := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * idle))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("bytes nobody asked for")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("still open %v after the last request", time.Since(last))
	}
	if d := time.Since(last); d < idle-deadlineSlack-100*time.Millisecond || d > idle+500*time.Millisecond {
		t.Errorf("closed %v after the last request, want about %v", d, idle)
	}
}
