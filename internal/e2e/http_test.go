package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/bus"
	"keyhole/internal/client"
	"keyhole/internal/proxy"
	"keyhole/registry"
)

// echo is a backend that answers with what it received.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("X-Method", r.Method)
	h.Set("X-Uri", r.RequestURI)
	h.Set("X-Host", r.Host)
	h.Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10))
	for k, v := range r.Header {
		h["X-Req-"+k] = v
	}
	h.Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

func TestHTTPMethods(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, backend(t, echo).URL, newKey(t))
	v := visitor(p)
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"} {
		t.Run(m, func(t *testing.T) {
			body := "payload for " + m
			req, _ := http.NewRequest(m, c.url+"/m?x=1", strings.NewReader(body))
			resp, err := v.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if g := resp.Header.Get("X-Method"); g != m {
				t.Errorf("got method %q, want %q", g, m)
			}
			want := body
			if m == "HEAD" {
				want = ""
			}
			if string(got) != want {
				t.Errorf("got body %q, want %q", got, want)
			}
		})
	}
}

func TestHTTPBinaryBodiesBothWays(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, backend(t, echo).URL, newKey(t))
	v := visitor(p)
	for _, size := range []int{0, 1, 65535, 65536, 65537, 400 << 10, 512000} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/chunked=%v", size, chunked), func(t *testing.T) {
				body := make([]byte, size)
				rand.Read(body)
				var r io.Reader = bytes.NewReader(body)
				if chunked {
					r = io.MultiReader(r) // hides the length: sent chunked
				}
				req, _ := http.NewRequest("POST", c.url+"/upload", r)
				resp, err := v.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 {
					t.Fatalf("got status %d, want 200: %s", resp.StatusCode, got)
				}
				if !bytes.Equal(got, body) {
					t.Errorf("got %d bytes back, want the %d sent, byte-exact", len(got), len(body))
				}
				// A chunked body streams through as it arrives: the
				// service sees it chunked too.
				want := strconv.Itoa(size)
				if chunked {
					want = "-1"
				}
				if cl := resp.Header.Get("X-Content-Length"); cl != want {
					t.Errorf("backend saw Content-Length %s, want %s", cl, want)
				}
			})
		}
	}
}

func TestHTTPQueryHeadersAndCookiesExact(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Set-Cookie"] = []string{"a=1; Path=/", "b=2; HttpOnly", "c=3"}
		w.Header()["X-Multi"] = []string{"one", "two"}
		w.Header().Set("X-Got-Cookie", strings.Join(r.Header.Values("Cookie"), "|"))
		w.Header().Set("X-Got-Accept", strings.Join(r.Header.Values("Accept"), "|"))
		w.Header().Set("X-Got-Uri", r.RequestURI)
		w.Header().Set("X-Got-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		w.Header().Set("X-Got-User-Agent", fmt.Sprint(r.Header["User-Agent"]))
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	})
	c := startClient(t, p, be.URL, newKey(t))
	uri := "/path%2Fwith/escapes;p=1?q=a+b&r=%20&s=%E2%9C%93&s=2&empty=&flag"
	req, _ := http.NewRequest("GET", c.url+uri, nil)
	req.Header["Cookie"] = []string{"x=1", "y=2"}
	req.Header["Accept"] = []string{"text/html", "application/json"}
	req.Header.Set("Accept-Encoding", "gzip, br")
	req.Header.Set("User-Agent", "keyhole-test/1")
	resp, err := visitor(p).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checks := []struct{ name, got, want string }{
		{"status", strconv.Itoa(resp.StatusCode), "418"},
		{"body", string(body), "short and stout"},
		{"Set-Cookie", strings.Join(resp.Header.Values("Set-Cookie"), "|"), "a=1; Path=/|b=2; HttpOnly|c=3"},
		{"X-Multi", strings.Join(resp.Header.Values("X-Multi"), "|"), "one|two"},
		{"request Cookie", resp.Header.Get("X-Got-Cookie"), "x=1|y=2"},
		{"request Accept", resp.Header.Get("X-Got-Accept"), "text/html|application/json"},
		{"request URI", resp.Header.Get("X-Got-Uri"), uri},
		{"Accept-Encoding", resp.Header.Get("X-Got-Accept-Encoding"), "gzip, br"},
		{"User-Agent", resp.Header.Get("X-Got-User-Agent"), "[keyhole-test/1]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestHTTPHopByHopAndForwardedHeaders(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		wantXFF string
		wantPro string
		wantHst string
	}{
		{"untrusted peer: spoofed values replaced", nil, "127.0.0.1", "http", ""},
		{"trusted front proxy: kept and extended", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9, 127.0.0.1", "https", "front.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, proxy.Config{TrustedProxies: tt.trusted})
			be := backend(t, func(w http.ResponseWriter, r *http.Request) {
				for _, f := range []string{"X-Secret", "Keep-Alive", "Te", "Upgrade", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Proxy-Authorization", "Trailer"} {
					w.Header().Set("Seen-"+f, strings.Join(r.Header.Values(f), "|"))
				}
				// Hop-by-hop fields the backend sends must not reach the visitor.
				w.Header().Set("Connection", "X-Backend-Private")
				w.Header().Set("X-Backend-Private", "leak")
				w.Header().Set("Keep-Alive", "timeout=99")
				w.Header().Set("Proxy-Authenticate", "Basic")
				io.WriteString(w, "ok")
			})
			c := startClient(t, p, be.URL, newKey(t))
			req, _ := http.NewRequest("GET", c.url+"/", nil)
			req.Header.Set("Connection", "X-Secret, X-Forwarded-For")
			req.Header.Set("X-Secret", "hidden")
			req.Header.Set("Keep-Alive", "timeout=5")
			req.Header.Set("Te", "trailers")
			req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-Host", "front.example")
			req.Header.Set("X-Real-Ip", "203.0.113.9")
			resp, err := visitor(p).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			host := hostOf(c.url)
			wantHost := tt.wantHst
			if wantHost == "" {
				wantHost = host
			}
			// Connection named X-Forwarded-For: hop-by-hop stripping runs
			// first, so the proxy's own value is still set afterwards.
			xff := tt.wantXFF
			if tt.trusted != nil {
				xff = "127.0.0.1" // the visitor named X-Forwarded-For in Connection, so its value is dropped first
			}
			checks := []struct{ field, want string }{
				{"Seen-X-Secret", ""}, {"Seen-Keep-Alive", ""}, {"Seen-Te", ""}, {"Seen-Upgrade", ""},
				{"Seen-Proxy-Authorization", ""}, {"Seen-Trailer", ""},
				{"Seen-X-Forwarded-For", xff},
				{"Seen-X-Forwarded-Proto", tt.wantPro},
				{"Seen-X-Forwarded-Host", wantHost},
				{"X-Backend-Private", ""}, {"Keep-Alive", ""}, {"Proxy-Authenticate", ""},
			}
			if tt.trusted == nil {
				checks = append(checks, struct{ field, want string }{"Seen-X-Real-Ip", ""})
			}
			for _, c := range checks {
				if got := resp.Header.Get(c.field); got != c.want {
					t.Errorf("%s: got %q, want %q", c.field, got, c.want)
				}
			}
		})
	}
}

func TestHTTPTrustedProxyChain(t *testing.T) {
	p := startProxy(t, proxy.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	})
	c := startClient(t, p, be.URL, newKey(t))
	req, _ := http.NewRequest("GET", c.url+"/", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	resp, err := visitor(p).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "198.51.100.7, 127.0.0.1"; string(got) != want {
		t.Errorf("got X-Forwarded-For %q, want %q", got, want)
	}
}

func TestHTTPVisitorTable(t *testing.T) {
	var hits, uploads atomic.Int64
	release := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/up":
			if _, err := io.Copy(io.Discard, r.Body); err == nil {
				uploads.Add(1) // a whole body reached the service
			}
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/big":
			w.Header().Set("Content-Length", "512001")
			w.Write(make([]byte, 512001))
		case "/big-streamed":
			for i := 0; i < 9; i++ {
				w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
			}
		case "/exact-cap":
			w.Write(make([]byte, 512000))
		}
	})
	t.Cleanup(func() { close(release) })
	p := startProxy(t, proxy.Config{RequestTimeout: 500 * time.Millisecond})
	c := startClient(t, p, be.URL, newKey(t))
	v := visitor(p)
	_, port, _ := strings.Cut(hostOf(c.url), ":")
	unknown := "http://" + strings.Repeat("a", 52) + ".localhost:" + port

	get := func(t *testing.T, method, url string, body io.Reader) (*http.Response, string, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(method, url, body)
		start := time.Now()
		resp, b := do(t, v, req)
		return resp, b, time.Since(start)
	}

	t.Run("no client connected: 404 at once naming the host", func(t *testing.T) {
		resp, body, took := get(t, "GET", unknown+"/", nil)
		if resp.StatusCode != 404 || !strings.Contains(body, strings.Repeat("a", 52)+".localhost") {
			t.Errorf("got %d %q, want 404 naming the hostname", resp.StatusCode, body)
		}
		if took > time.Second {
			t.Errorf("took %v, want at once", took)
		}
	})
	t.Run("host outside the domain: 404, not forwarded", func(t *testing.T) {
		before := hits.Load()
		for _, host := range []string{"example.com", "x." + hostOf(c.url), "localhost.evil.com"} {
			resp, _, _ := get(t, "GET", "http://"+host+"/", nil)
			if resp.StatusCode != 404 {
				t.Errorf("host %s: got %d, want 404", host, resp.StatusCode)
			}
		}
		if hits.Load() != before {
			t.Errorf("backend got %d requests, want none", hits.Load()-before)
		}
	})
	t.Run("no answer in time: 504", func(t *testing.T) {
		resp, _, took := get(t, "GET", c.url+"/slow", nil)
		if resp.StatusCode != 504 {
			t.Errorf("got %d, want 504", resp.StatusCode)
		}
		if took > 3*time.Second {
			t.Errorf("took %v with a 500ms timeout", took)
		}
	})
	t.Run("request body over the cap: 413, never complete", func(t *testing.T) {
		before := hits.Load()
		resp, _, _ := get(t, "POST", c.url+"/up", bytes.NewReader(make([]byte, 512001)))
		if resp.StatusCode != 413 {
			t.Errorf("declared length: got %d, want 413", resp.StatusCode)
		}
		if hits.Load() != before {
			t.Errorf("declared over the cap: backend got %d requests, want none", hits.Load()-before)
		}
		// A chunked body streams until it passes the cap; then the
		// stream is reset, and the service sees an aborted request.
		resp, _, _ = get(t, "POST", c.url+"/up", io.MultiReader(bytes.NewReader(make([]byte, 512001))))
		if resp.StatusCode != 413 {
			t.Errorf("streamed: got %d, want 413", resp.StatusCode)
		}
		if n := uploads.Load(); n != 0 {
			t.Errorf("streamed over the cap: the service read %d whole bodies, want none", n)
		}
	})
	t.Run("response body at the cap passes", func(t *testing.T) {
		resp, body, _ := get(t, "GET", c.url+"/exact-cap", nil)
		if resp.StatusCode != 200 || len(body) != 512000 {
			t.Errorf("got %d with %d bytes, want 200 with 512000", resp.StatusCode, len(body))
		}
	})
	t.Run("response body over the cap: 502", func(t *testing.T) {
		resp, _, _ := get(t, "GET", c.url+"/big", nil)
		if resp.StatusCode != 502 {
			t.Errorf("got %d, want 502", resp.StatusCode)
		}
		before := p.Stats().ResponseTooLarge.Load()
		// A streamed response is cut off once it passes the cap: the
		// visitor sees a failed transfer, never a silently short body.
		req, _ := http.NewRequest("GET", c.url+"/big-streamed", nil)
		resp, err := v.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("streamed over the cap: read the whole body, want a failed transfer")
		}
		if got := p.Stats().ResponseTooLarge.Load(); got != before+1 {
			t.Errorf("ResponseTooLarge: got %d, want %d", got, before+1)
		}
	})
	t.Run("private service refuses: 502, the client's clear message in the log", func(t *testing.T) {
		lp, log := loggedProxy(t, proxy.Config{})
		dead := backend(t, nil)
		dead.Close()
		c2 := startClient(t, lp, dead.URL, newKey(t))
		req, _ := http.NewRequest("GET", c2.url+"/", nil)
		resp, body := do(t, visitor(lp), req)
		checkErrorPage(t, "private service refuses", resp, body, tunnelHost(c2.url), http.StatusBadGateway, log, "keyhole client: private service failed: ")
		if !strings.Contains(log.String(), "connection refused") {
			t.Errorf("the log does not say connection refused:\n%s", log.String())
		}
	})
	t.Run("client disconnects mid-request: 502 at once", func(t *testing.T) {
		started := make(chan struct{}, 1)
		be2 := backend(t, func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			<-r.Context().Done()
		})
		p2 := startProxy(t, proxy.Config{RequestTimeout: 20 * time.Second})
		c2 := startClient(t, p2, be2.URL, newKey(t))
		go func() { <-started; c2.stop() }()
		req, _ := http.NewRequest("GET", c2.url+"/", nil)
		start := time.Now()
		resp, err := visitor(p2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Errorf("got %d, want 502", resp.StatusCode)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v, want at once", took)
		}
	})
}

func TestHTTPTunnelRateLimit(t *testing.T) {
	p := startProxy(t, proxy.Config{TunnelRate: 1})
	c := startClient(t, p, backend(t, echo).URL, newKey(t))
	v := visitor(p)
	var codes []int
	var retry string
	for i := 0; i < 5; i++ {
		resp, err := v.Get(c.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if !slices.Contains(codes, 429) || codes[0] != 200 {
		t.Fatalf("got statuses %v, want 200 first and then 429", codes)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Errorf("got Retry-After %q, want a whole number of seconds >= 1", retry)
	}
}

func TestHTTPStreamsAsItArrives(t *testing.T) {
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	})
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be.URL, newKey(t))
	resp, err := visitor(p).Get(c.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	for i := 0; i < 3; i++ {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("data: %d\n\n", i); string(buf[:n]) != want {
			t.Fatalf("event %d: got %q, want %q before the stream ends", i, buf[:n], want)
		}
		next <- struct{}{}
	}
}

var _ = errors.Is

// A stream longer than the server's write timeout keeps flowing: the
// timeout bounds each write, not the whole response.
func TestHTTPStreamOutlivesWriteTimeout(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 6; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(250 * time.Millisecond)
		}
	})
	srv, err := proxy.New(proxy.Config{RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, WriteTimeout: 500 * time.Millisecond} // as cmd/proxy sets it, scaled down
	go hs.Serve(ln)
	defer hs.Close()
	defer srv.Close()
	p := &testProxy{Server: srv, addr: ln.Addr().String()}
	c := startClient(t, p, be.URL, newKey(t))
	resp, err := visitor(p).Get(c.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || strings.Count(string(got), "data: ") != 6 {
		t.Errorf("got %q, %v; want all 6 events over 1.5s through a 0.5s write timeout", got, err)
	}
}

// The proxy adds no response header the service did not send: no sniffed
// Content-Type (an HTML-looking body must not become text/html) and no
// Date.
func TestHTTPAddsNoResponseHeaders(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const body = "<html><script>alert(1)</script></html>"
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.URL.Path == "/chunked" {
						fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Only: this\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
					} else {
						fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Only: this\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					}
				}
			}()
		}
	}()
	c := startClient(t, p, "http://"+ln.Addr().String(), newKey(t))
	for _, path := range []string{"/fixed", "/chunked"} {
		resp, err := visitor(p).Get(c.url + path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Framing (Content-Length or chunked) is the proxy's own choice.
		delete(resp.Header, "Content-Length")
		if len(resp.Header) != 1 || resp.Header.Get("X-Only") != "this" || string(got) != body {
			t.Errorf("%s: got headers %v and body %q, want only X-Only and the body", path, resp.Header, got)
		}
	}
}

// With BasicAuth the client answers 401 itself until a visitor gives one
// of its credentials, and the service never sees them.
func TestBasicAuth(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	var hits atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Upgrade") != "" {
			if ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil); err == nil {
				ws.Close()
			}
			return
		}
		fmt.Fprintf(w, "authorization=%q", r.Header.Get("Authorization"))
	})
	c := startClient(t, p, be.URL, newKey(t), func(cfg *client.Config) {
		cfg.BasicAuth = []string{"ann:correct horse", "bo:battery staple"}
	})
	for _, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{"none", "", "", 401},
		{"wrong password", "ann", "battery staple", 401},
		{"unknown user", "cy", "correct horse", 401},
		{"ann", "ann", "correct horse", 200},
		{"bo", "bo", "battery staple", 200},
	} {
		before := hits.Load()
		req, _ := http.NewRequest("POST", c.url+"/x", strings.NewReader("body"))
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, body := do(t, visitor(p), req)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		reached := hits.Load() != before
		if tc.want == 401 {
			if reached {
				t.Errorf("%s: the service was reached", tc.name)
			}
			if got := resp.Header.Get("Www-Authenticate"); !strings.HasPrefix(got, "Basic ") {
				t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", tc.name, got)
			}
		} else if body != `authorization=""` {
			t.Errorf("%s: the service saw %s, want no credentials", tc.name, body)
		}
	}

	// A WebSocket handshake needs them too.
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, p.addr) }}
	wsURL := strings.Replace(c.url, "http://", "ws://", 1) + "/socket"
	if _, resp, err := d.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("WebSocket without credentials: got %v, want 401", err)
	}
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("bo:battery staple"))}}
	ws, _, err := d.Dial(wsURL, h)
	if err != nil {
		t.Fatalf("WebSocket with credentials: %v", err)
	}
	ws.Close()

	for _, bad := range [][]string{{"ann"}, {":password"}, {"ann:short"}} {
		if _, err := client.New(client.Config{Proxy: p.wsURL(), Target: be.URL, Key: newKey(t), BasicAuth: bad}); err == nil {
			t.Errorf("BasicAuth %q: got no error", bad)
		}
	}
}

// A service that flushes many small events in a burst to a visitor that
// reads slowly: every event arrives, on one node and across nodes. The
// proxy queues them (bounded in bytes) rather than closing the stream.
func TestHTTPEventBurstToSlowVisitor(t *testing.T) {
	const events = 2000
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	shared, routes := bus.NewMemory(), registry.NewMemory()
	a := startProxy(t, proxy.Config{Node: "a", Bus: shared, Registry: routes})
	b := startProxy(t, proxy.Config{Node: "b", Bus: shared, Registry: routes})
	c := startClient(t, a, be.URL, newKey(t))
	for name, p := range map[string]*testProxy{"same node": a, "across nodes": b} {
		resp, err := visitor(p).Get(c.url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		// The visitor reads nothing until the service has sent it all.
		time.Sleep(300 * time.Millisecond)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var want strings.Builder
		for i := range events {
			fmt.Fprintf(&want, "data: %d\n\n", i)
		}
		if err != nil || string(body) != want.String() {
			t.Errorf("%s: got %d bytes (%v), want all %d events (%d bytes)", name, len(body), err, events, want.Len())
		}
	}
	if n := a.Stats().StreamOverflow.Load() + b.Stats().StreamOverflow.Load(); n != 0 {
		t.Errorf("%d streams overflowed", n)
	}
}

// A private service on https:// with a self-signed certificate: refused
// with a 502 (the certificate named in the proxy's log) unless the client
// is told not to verify it; then plain
// requests and WebSockets both reach it.
func TestTargetInsecure(t *testing.T) {
	p, log := loggedProxy(t, proxy.Config{})
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			if ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil); err == nil {
				ws.Close()
			}
			return
		}
		io.WriteString(w, "over TLS")
	}))
	t.Cleanup(be.Close)

	strict := startClient(t, p, be.URL, newKey(t))
	req, _ := http.NewRequest("GET", strict.url+"/", nil)
	resp, body := do(t, visitor(p), req)
	checkErrorPage(t, "self-signed target, verified", resp, body, tunnelHost(strict.url), http.StatusBadGateway, log, "certificate")

	lax := startClient(t, p, be.URL, newKey(t), func(c *client.Config) { c.TargetInsecure = true })
	req, _ = http.NewRequest("GET", lax.url+"/", nil)
	resp, body = do(t, visitor(p), req)
	if resp.StatusCode != 200 || body != "over TLS" {
		t.Errorf("self-signed target, not verified: got %d %q, want 200", resp.StatusCode, body)
	}
	ws, _ := wsDial(t, p, lax.url, nil)
	ws.Close()
}
