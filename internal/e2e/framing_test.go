package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/proxy"
	"keyhole/messages"
)

// Framing the proxy decides: the declared length is the framing both ways,
// a length that does not hold fails the stream, and what a tenant or a
// visitor writes cannot make the proxy frame a message two ways.

// rawBackend is a private service that answers each request with the
// bytes answer returns for its request line, written by hand.
func rawBackend(t *testing.T, answer func(requestLine string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // protects conns
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[conn] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					a, closing := strings.CutSuffix(answer(req.Method+" "+req.RequestURI), closeAfter)
					if _, err := io.WriteString(conn, a); err != nil || closing {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// closeAfter, at the end of a rawBackend answer, closes the connection
// after it.
const closeAfter = "\x00close"

// rawExchange writes a request by hand to the proxy at addr and reads one
// answer; it reports the response (nil if none could be read), its body,
// and the error that ended the body, if any.
func rawExchange(t *testing.T, addr, request string) (*http.Response, string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func TestFramingResponseLengths(t *testing.T) {
	be := rawBackend(t, func(line string) string {
		switch line {
		case "HEAD /head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
		case "GET /not-modified":
			return "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nEtag: \"x\"\r\n\r\n"
		case "GET /short":
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this" + closeAfter
		case "GET /two-lengths":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
		case "GET /switch":
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
		case "GET /early-hints":
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	})
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be, newKey(t))
	host := hostOf(c.url)
	req := func(method, path string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, path, host)
	}
	t.Run("HEAD keeps its declared length", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, req("HEAD", "/head"))
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "1234" {
			t.Errorf("got %d with Content-Length %q, want 200 with 1234", resp.StatusCode, resp.Header.Get("Content-Length"))
		}
	})
	t.Run("304 is a clean answer", func(t *testing.T) {
		resp, _, err := rawExchange(t, p.addr, req("GET", "/not-modified"))
		if err != nil || resp.StatusCode != 304 || resp.Header.Get("Etag") != `"x"` {
			t.Errorf("got %v (err %v), want 304 with its Etag", resp, err)
		}
	})
	t.Run("a body short of its length is an aborted transfer", func(t *testing.T) {
		before := p.Stats().UpstreamErrors.Load() + p.Stats().LengthMismatches.Load()
		resp, body, err := rawExchange(t, p.addr, req("GET", "/short"))
		if resp != nil && resp.StatusCode == 200 && err == nil {
			t.Errorf("got a clean 200 with %q, want an aborted transfer", body)
		}
		if after := p.Stats().UpstreamErrors.Load() + p.Stats().LengthMismatches.Load(); after == before {
			t.Error("the failure was not counted")
		}
	})
	for _, tc := range []struct{ name, path string }{
		{"two different Content-Lengths never reach the visitor", "/two-lengths"},
		{"a 101 the visitor did not ask for never reaches it", "/switch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := rawExchange(t, p.addr, req("GET", tc.path))
			if err != nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("got %v %q (err %v), want 502", resp, body, err)
			}
			if n := len(resp.Header["Content-Length"]); n > 1 {
				t.Errorf("got %d Content-Length fields, want at most one", n)
			}
		})
	}
	t.Run("an informational answer is followed by the final one", func(t *testing.T) {
		resp, body, err := rawExchange(t, p.addr, req("GET", "/early-hints"))
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %v %q (err %v), want 200 ok", resp, body, err)
		}
	})
}

// A body whose pieces do not add up to its declared length reaches the
// service as an aborted request, never a complete one. net/http frames
// what a visitor sends, so only a peer that breaks the protocol can send
// such a body: a proxy spoken by hand, to the real client.
func TestFramingRequestLengthMismatch(t *testing.T) {
	var complete, aborted atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			aborted.Add(1)
			return
		}
		complete.Add(1)
	})
	for _, tc := range []struct {
		name   string
		pieces []int
	}{
		{"short", []int{50}},
		{"long", []int{100, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, abortedBefore := complete.Load(), aborted.Load()
			answer := handProxy(t, be.URL, func(ws *websocket.Conn) messages.Frame {
				id := messages.NewID()
				head, _ := messages.AppendRequestHead(nil, &messages.RequestHead{Method: "POST", URI: "/", Host: "x.localhost", ContentLength: 100, Header: http.Header{}})
				writeRaw(t, ws, messages.Frame{Type: messages.TypeHTTPRequest, ID: id, Payload: head}.Append(nil))
				for i, n := range tc.pieces {
					var flags messages.Flags
					if i == len(tc.pieces)-1 {
						flags = messages.FlagEnd
					}
					writeRaw(t, ws, messages.Frame{Type: messages.TypeData, Flags: flags, ID: id, Payload: make([]byte, n)}.Append(nil))
				}
				for {
					if f := readRaw(t, ws); f.ID == id {
						return f
					}
				}
			})
			if answer.Type != messages.TypeError {
				t.Errorf("the client answered %v, want Error", answer.Type)
			}
			waitFor(t, "the service to see an aborted request", func() bool { return aborted.Load() > abortedBefore })
			if complete.Load() != before {
				t.Errorf("the service read a complete body")
			}
		})
	}
}

// handProxy runs the real client against a proxy spoken by hand: it
// registers the client on revision 2, runs exchange on the link, and
// returns what exchange returned.
func handProxy(t *testing.T, target string, exchange func(ws *websocket.Conn) messages.Frame) messages.Frame {
	t.Helper()
	got := make(chan messages.Frame, 1)
	srv := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ch, _ := (&messages.Challenge{Domain: "localhost"}).Append(nil)
		writeRaw(t, ws, messages.Frame{Type: messages.TypeChallenge, Payload: ch}.Append(nil))
		if f := readRaw(t, ws); f.Type != messages.TypeRegistrationRequest {
			t.Errorf("got %v, want RegistrationRequest", f.Type)
			return
		}
		resp, _ := (&messages.RegistrationResponse{Hostname: "x.localhost", URL: "http://x.localhost", Revision: 2}).Append(nil)
		writeRaw(t, ws, messages.Frame{Type: messages.TypeRegistrationResponse, Payload: resp}.Append(nil))
		got <- exchange(ws)
	})
	t.Cleanup(srv.Close)
	startClientAt(t, "ws://"+strings.TrimPrefix(srv.URL, "http://"), target, newKey(t))
	select {
	case f := <-got:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no answer from the client")
	}
	return messages.Frame{}
}

// A request with both Transfer-Encoding and Content-Length is framed by
// the former, served once, and its connection closed: a request hidden
// behind it is never served (RFC 9112 section 6.1).
func TestFramingTransferEncodingWithLength(t *testing.T) {
	var hits atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.URL.Path)
	})
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be.URL, newKey(t))
	host := hostOf(c.url)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	hidden := "GET /hidden HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	smuggle := "POST /first HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nContent-Length: " +
		fmt.Sprint(len("0\r\n\r\n")+len(hidden)) + "\r\n\r\n0\r\n\r\n" + hidden
	io.WriteString(conn, smuggle)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "/first" || !resp.Close {
		t.Errorf("got %d %q (close %v), want 200 /first and the connection closing", resp.StatusCode, body, resp.Close)
	}
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Error("a second answer came on the connection, want none")
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the service got %d requests, want 1", n)
	}
}

// A chunked body with broken framing is the visitor's error: 400.
func TestFramingMalformedChunkedBody(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, backend(t, echo).URL, newKey(t))
	resp, _, err := rawExchange(t, p.addr, "POST / HTTP/1.1\r\nHost: "+hostOf(c.url)+"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("got %v (err %v), want 400", resp, err)
	}
}

// Visitors that declare a body and stop sending it are cut after the idle
// bound, many at once: each gets 408 and the service sees an aborted
// request, and nothing is held afterwards.
func TestFramingStalledBodies(t *testing.T) {
	const visitors = 20
	var aborted, started atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		if _, err := io.ReadAll(r.Body); err != nil {
			aborted.Add(1)
		}
	})
	p := startProxy(t, proxy.Config{RequestTimeout: time.Second})
	c := startClient(t, p, be.URL, newKey(t))
	host := hostOf(c.url)
	codes := make(chan int, visitors)
	start := time.Now()
	for range visitors {
		go func() {
			conn, err := net.Dial("tcp", p.addr)
			if err != nil {
				codes <- 0
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n%s", host, strings.Repeat("x", 1000))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				codes <- -1
				return
			}
			codes <- resp.StatusCode
		}()
	}
	for range visitors {
		if code := <-codes; code != http.StatusRequestTimeout {
			t.Errorf("a stalled visitor got %d, want 408", code)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the stalled bodies were cut after %v, want about the 1 s idle bound", took)
	}
	waitFor(t, "the service to see every request aborted", func() bool { return aborted.Load() == started.Load() && started.Load() == visitors })
	if got := p.Stats().BodyTimeouts.Load(); got != visitors {
		t.Errorf("body_timeouts: got %d, want %d", got, visitors)
	}
}

// A Ping's payload is at most 64 bytes: one that long is answered, a
// longer one closes the link.
func TestFramingPingPayloadBound(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	ws := registeredRawLink(t, p)
	sendRaw(t, ws, messages.TypePing, make([]byte, messages.MaxPing))
	if f := readRaw(t, ws); f.Type != messages.TypePing || f.Flags&messages.FlagPong == 0 || len(f.Payload) != messages.MaxPing {
		t.Fatalf("got %v (flags %v, %d bytes), want a Pong of %d bytes", f.Type, f.Flags, len(f.Payload), messages.MaxPing)
	}
	sendRaw(t, ws, messages.TypePing, make([]byte, messages.MaxPing+1))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return // closed, as it should be
		}
		if f, err := messages.Parse(data); err == nil && f.Type == messages.TypePing && f.Flags&messages.FlagPong != 0 {
			t.Fatal("a Ping over 64 bytes was answered, want the link closed")
		}
	}
}

// A client that never sends its RegistrationRequest is told 408 when the
// proxy gives up on it after 10 s.
func TestFramingRegistrationTimeout(t *testing.T) {
	t.Parallel()
	p := startProxy(t, proxy.Config{})
	ws, _ := rawLink(t, p)
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := messages.Parse(data)
	if err != nil || f.Type != messages.TypeError {
		t.Fatalf("got %v (err %v), want Error", f.Type, err)
	}
	if st, _ := messages.ParseStatus(f.Payload); st.Code != http.StatusRequestTimeout {
		t.Errorf("got status %d (%s), want 408", st.Code, st.Text)
	}
}
