package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
	"keyhole/internal/syncbuf"
)

// Bodies with credit (PROTOCOL.md section 9.3): any size, any speed, one
// node or across two over a real Redis.

// route is one way a visitor reaches a tunnel: the proxy to send requests
// to, and the tunnel's URL.
type route struct {
	name string
	hc   *http.Client
	url  string
}

// streamRoutes starts, for a backend, a tunnel on one node and one whose
// visitors enter on a second node over a real Redis, both with cfg.
func streamRoutes(t *testing.T, cfg proxy.Config, h http.HandlerFunc) []route {
	t.Helper()
	be := backend(t, h)
	one := startProxy(t, cfg)
	c1 := startClient(t, one, be.URL, newKey(t))

	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	node := func(name string) *testProxy {
		bs, reg := redisNode(t, srv, prefix)
		c := cfg
		c.Node, c.Bus, c.Registry = name, bs, reg
		return startProxy(t, c)
	}
	a, b := node("a"), node("b")
	var clientLog syncbuf.Buffer
	c2 := startClient(t, a, be.URL, newKey(t), func(c *client.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the client across nodes logged:\n%s", clientLog.String())
		}
	})
	return []route{
		{name: "one node", hc: visitor(one), url: c1.url},
		{name: "across nodes", hc: visitor(b), url: c2.url},
	}
}

// pattern is a deterministic body of n bytes, so large transfers need not
// be held in memory to be checked.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off == p.n {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n-p.off)
	for i := range k {
		x := uint64(p.off + i)
		b[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24)
	}
	p.off += k
	return int(k), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &pattern{n: n})
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// A large body goes through byte-exact both ways with no cap, on one node
// and across nodes: far past what any queue holds, so only credit keeps
// it whole.
func TestStreamLargeBodiesNoCap(t *testing.T) {
	const size = 32 << 20
	want := patternSum(size)
	routes := streamRoutes(t, proxy.Config{MaxBody: proxy.NoCap}, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			w.Header().Set("Content-Length", strconv.Itoa(size))
			io.Copy(w, &pattern{n: size})
		case "/down-chunked":
			io.Copy(w, &pattern{n: size})
		case "/up":
			uploadSum(w, r)
		}
	})
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			for _, path := range []string{"/down", "/down-chunked"} {
				resp, err := rt.hc.Get(rt.url + path)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				n, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
					t.Errorf("%s: got %d bytes (err %v), want %d byte-exact", path, n, err, size)
				}
			}
			for _, chunked := range []bool{false, true} {
				var body io.Reader = &pattern{n: size}
				req, _ := http.NewRequest("POST", rt.url+"/up", body)
				if !chunked {
					req.ContentLength = size
				}
				resp, got := do(t, rt.hc, req)
				if wantBody := fmt.Sprintf("%d %x", size, want); resp.StatusCode != 200 || got != wantBody {
					t.Errorf("upload (chunked %v): got %d %q, want 200 %q", chunked, resp.StatusCode, got, wantBody)
				}
			}
		})
	}
}

// A visitor that stops reading holds back only its own stream: a fast
// download on the same tunnel, started after it, completes while the
// stalled one still has most of its body to come (far more than every
// buffer on the way holds), and then the stalled one completes too, both
// byte-exact. No clock decides it: were the stalled stream to hold the
// link, the fast download would never end.
func TestStreamSlowVisitorHoldsBackOnlyItself(t *testing.T) {
	const stalledSize, readFirst, fastSize = 32 << 20, 256 << 10, 32 << 20
	routes := streamRoutes(t, proxy.Config{MaxBody: proxy.NoCap}, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, &pattern{n: n})
	})
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			resume := make(chan struct{})
			stalled := make(chan struct{}) // the stalled visitor has read its first bytes and stopped
			stalledDone := make(chan error, 1)
			go func() {
				resp, err := rt.hc.Get(rt.url + "/?n=" + strconv.Itoa(stalledSize))
				if err != nil {
					close(stalled)
					stalledDone <- err
					return
				}
				defer resp.Body.Close()
				h := sha256.New()
				n, err := io.CopyN(h, resp.Body, readFirst)
				close(stalled)
				if err == nil {
					<-resume
					var rest int64
					rest, err = io.Copy(h, resp.Body)
					n += rest
				}
				if want := patternSum(stalledSize); err == nil && (n != stalledSize || !bytes.Equal(h.Sum(nil), want[:])) {
					err = fmt.Errorf("got %d bytes, want %d byte-exact", n, stalledSize)
				}
				stalledDone <- err
			}()
			<-stalled
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rt.url+"/?n="+strconv.Itoa(fastSize), nil)
			resp, err := rt.hc.Do(req)
			if err != nil {
				close(resume)
				t.Fatalf("fast download beside a stalled one: %v", err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			close(resume)
			if want := patternSum(fastSize); err != nil || n != fastSize || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Errorf("fast download beside a stalled one: got %d bytes (err %v), want %d byte-exact", n, err, fastSize)
			}
			if err := <-stalledDone; err != nil {
				t.Errorf("stalled download, once read again: %v", err)
			}
		})
	}
}

// pacedBody sends n pieces of piece bytes, one every gap.
type pacedBody struct {
	piece, n int
	gap      time.Duration
	left     int          // bytes left of the current piece
	sent     int          // pieces begun
	last     atomic.Int64 // when the last piece began, Unix ns
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.left == 0 {
		if p.sent == p.n {
			return 0, io.EOF
		}
		if p.sent > 0 {
			time.Sleep(p.gap)
		}
		p.sent++
		p.left = p.piece
		if p.sent == p.n {
			p.last.Store(time.Now().UnixNano())
		}
	}
	k := min(len(b), p.left)
	clear(b[:k])
	p.left -= k
	return k, nil
}

// A paced upload reaches the service as it is sent: its first bytes
// arrive before the visitor has sent the last ones, declared or chunked.
func TestStreamPacedUploadArrivesAsSent(t *testing.T) {
	first := make(chan int64, 1)
	routes := streamRoutes(t, proxy.Config{MaxBody: proxy.NoCap}, func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, b); err == nil {
			select {
			case first <- time.Now().UnixNano():
			default:
			}
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n+1)
	})
	for _, rt := range routes {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", rt.name, chunked), func(t *testing.T) {
				body := &pacedBody{piece: 64 << 10, n: 16, gap: 125 * time.Millisecond} // 1 MiB over 2 s
				req, _ := http.NewRequest("POST", rt.url+"/", body)
				if !chunked {
					req.ContentLength = 1 << 20
				}
				resp, got := do(t, rt.hc, req)
				if resp.StatusCode != 200 || got != strconv.Itoa(1<<20) {
					t.Fatalf("got %d %q, want 200 %d", resp.StatusCode, got, 1<<20)
				}
				arrived := <-first
				if last := body.last.Load(); arrived >= last {
					t.Errorf("the first byte reached the service %v after the last was sent, want before", time.Duration(arrived-last))
				}
			})
		}
	}
}

// An upload the service stops taking fails the visitor's request at once,
// not at the request timeout.
func TestStreamUploadTheServiceDropsFailsFast(t *testing.T) {
	routes := streamRoutes(t, proxy.Config{MaxBody: proxy.NoCap}, func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, 200<<10)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // the service goes away mid-upload
		}
	})
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			start := time.Now()
			req, _ := http.NewRequest("POST", rt.url+"/", &pattern{n: 256 << 20})
			req.ContentLength = 256 << 20
			resp, err := rt.hc.Do(req)
			took := time.Since(start)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("got %d, want 502", resp.StatusCode)
				}
			}
			if took > 2*time.Second {
				t.Errorf("the visitor learned of it after %v, want at once (well within the 30 s request timeout)", took)
			}
		})
	}
}

// Many uploads at once through one link, entering on the node that does
// not hold it: each stream stays within its credit, and together they
// never overflow the link's queue on the node that holds it.
func TestStreamConcurrentUploadsAcrossNodes(t *testing.T) {
	rt := streamRoutes(t, proxy.Config{MaxBody: proxy.NoCap}, uploadSum)[1]
	concurrentUploads(t, rt.hc, rt.url, 16, 4<<20)
}

// The same over a link slower than the uploads: every stream's window is
// in flight at once, far more than the link's queue holds, and the node
// holding the link keeps each stream's frames until the link takes them
// rather than failing the streams.
func TestStreamConcurrentUploadsAcrossNodesOverASlowLink(t *testing.T) {
	be := backend(t, uploadSum)
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	node := func(name string) *testProxy {
		bs, reg := redisNode(t, srv, prefix)
		return startProxy(t, proxy.Config{MaxBody: proxy.NoCap, Node: name, Bus: bs, Registry: reg})
	}
	a, b := node("a"), node("b")
	slow := slowLink(t, a.addr, 16<<20)
	c := startClientAt(t, "ws://"+slow, be.URL, newKey(t))
	concurrentUploads(t, visitor(b), c.url, 16, 2<<20)
}

// uploadSum answers an upload with its length and SHA-256.
func uploadSum(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
}

// slowLink relays connections to addr, passing what addr sends at about
// rate bytes a second and the other way at full speed.
func slowLink(t *testing.T, addr string, rate int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go io.Copy(out, in)
			go func() {
				const piece = 16 << 10
				buf := make([]byte, piece)
				start, sent := time.Now(), 0
				for {
					n, err := out.Read(buf)
					if n > 0 {
						if _, err := in.Write(buf[:n]); err != nil {
							return
						}
						sent += n
						if ahead := time.Duration(sent)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
							time.Sleep(ahead)
						}
					}
					if err != nil {
						in.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// concurrentUploads sends uploads bodies of size bytes at once to url,
// and checks that each reached the service whole.
func concurrentUploads(t *testing.T, hc *http.Client, url string, uploads, size int64) {
	t.Helper()
	want := patternSum(size)
	errs := make(chan error, uploads)
	for range uploads {
		go func() {
			req, _ := http.NewRequest("POST", url+"/", &pattern{n: size})
			req.ContentLength = size
			resp, err := hc.Do(req)
			if err != nil {
				errs <- err
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if wantBody := fmt.Sprintf("%d %x", size, want); resp.StatusCode != 200 || string(got) != wantBody {
				err = fmt.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, wantBody)
			}
			errs <- err
		}()
	}
	for range uploads {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
