package e2e

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/messages"
)

// defaultLimits are the proxy command's registration limits.
func defaultLimits() proxy.Config {
	return proxy.Config{
		RegisterRate:        proxy.DefaultRegisterRate,
		RegisterBurst:       proxy.DefaultRegisterBurst,
		RegisterGlobalRate:  proxy.DefaultRegisterGlobalRate,
		RegisterGlobalBurst: proxy.DefaultRegisterGlobalBurst,
	}
}

// sourceDialer dials from the loopback address src (127.0.0.2, say:
// Linux answers for all of 127.0.0.0/8).
func sourceDialer(src string) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second}
}

// registerOnce runs one registration with a fresh key through d, with
// header on the upgrade. It returns the upgrade's status: 101 for a link
// that registered, or the refusal's (429, with its Retry-After).
func registerOnce(t *testing.T, d *websocket.Dialer, p *testProxy, header http.Header) (int, string, error) {
	ws, resp, err := d.Dial(p.wsURL()+proxy.ConnectPath, header)
	if err != nil {
		if resp == nil {
			return 0, "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readFrameErr(ws)
	if err != nil {
		return 0, "", err
	}
	ch, err := messages.ParseChallenge(f.Payload)
	if err != nil {
		return 0, "", err
	}
	_, key, _ := ed25519.GenerateKey(nil)
	q := identity.Register(key, ch, [16]byte{}, time.Now())
	b := messages.Frame{Type: messages.TypeRegistrationRequest, Payload: q.Append(nil)}.Append(nil)
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, "", err
	}
	if f, err = readFrameErr(ws); err != nil {
		return 0, "", err
	}
	if f.Type != messages.TypeRegistrationResponse {
		return 0, "", errors.New("registration answered " + f.Type.String())
	}
	return http.StatusSwitchingProtocols, "", nil
}

func readFrameErr(ws *websocket.Conn) (messages.Frame, error) {
	_, data, err := ws.ReadMessage()
	if err != nil {
		return messages.Frame{}, err
	}
	return messages.Parse(data)
}

// startSourceRelay relays connections on a fresh 127.0.0.1 port to addr,
// dialing from src, so a real client behind it reaches the proxy from src.
func startSourceRelay(t *testing.T, addr, src string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := d.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	return ln.Addr().String()
}

// Done when 5 of issue 8: a thousand fresh-key registrations a second
// from one address are refused with 429 past the limit, before any
// signature check, while a real client from another address registers at
// once.
func TestRegistrationFloodFromOneAddress(t *testing.T) {
	p := startProxy(t, defaultLimits())
	be := backend(t, echo)
	const attempts, over = 1000, time.Second
	var accepted, limited, failed atomic.Int64
	var badRetry atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	d := sourceDialer("127.0.0.1")
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= attempts || time.Since(start) > 20*time.Second {
					return
				}
				time.Sleep(time.Until(start.Add(time.Duration(i) * over / attempts)))
				code, retry, err := registerOnce(t, d, p, nil)
				switch {
				case err != nil:
					failed.Add(1)
				case code == http.StatusSwitchingProtocols:
					accepted.Add(1)
				case code == http.StatusTooManyRequests:
					limited.Add(1)
					if n, err := strconv.Atoi(retry); err != nil || n < 1 {
						badRetry.Store(retry)
					}
				default:
					failed.Add(1)
				}
			}
		})
	}
	// Half way through the flood, a real client from 127.0.0.2.
	time.Sleep(over / 2)
	relay := startSourceRelay(t, p.addr, "127.0.0.2")
	began := time.Now()
	c := startClientAt(t, "ws://"+relay, be.URL, newKey(t))
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the client from 127.0.0.2 took %v to register, want at once", took)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if r := badRetry.Load(); r != nil {
		t.Errorf("a 429 had Retry-After %q, want whole seconds of at least 1", r)
	}
	maxOK := int64(proxy.DefaultRegisterBurst + proxy.DefaultRegisterRate*elapsed.Seconds() + 1)
	t.Logf("%d attempts in %v: %d registered, %d refused with 429, %d failed", attempts, elapsed.Round(time.Millisecond), accepted.Load(), limited.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d attempts failed otherwise, want none", failed.Load())
	}
	if a := accepted.Load(); a > maxOK || a < proxy.DefaultRegisterBurst {
		t.Errorf("%d registered, want the burst of %d and at most %d", a, proxy.DefaultRegisterBurst, maxOK)
	}
	if got, want := p.Stats().RegisterLimited.Load(), limited.Load(); got != want || want < attempts-maxOK {
		t.Errorf("registrations limited: counter %d, 429s %d, want equal and at least %d", got, want, attempts-maxOK)
	}
	if got, want := p.Stats().LinksAccepted.Load(), accepted.Load()+1; got != want {
		t.Errorf("links accepted: %d, want %d (the unlimited ones and the client)", got, want)
	}
	if n := p.Stats().LinksRefused.Load(); n != 0 {
		t.Errorf("links refused after a signature check: %d, want 0", n)
	}
	// The legitimate client serves.
	resp, _ := do(t, visitor(p), mustRequest(t, "GET", c.url+"/ok"))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the client's tunnel answered %d, want 200", resp.StatusCode)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The global limit holds across addresses, and the source address is
// the one the rest of the proxy believes: X-Forwarded-For only from a
// trusted front.
func TestRegistrationLimitSources(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	xff := func(a string) http.Header { return http.Header{"X-Forwarded-For": {a}} }
	type try struct {
		src  string
		hdr  http.Header
		want int
	}
	tests := []struct {
		name  string
		cfg   proxy.Config
		tries []try
	}{
		{"global limit across addresses", proxy.Config{RegisterGlobalRate: 0.5, RegisterGlobalBurst: 2}, []try{
			{"127.0.0.1", nil, 101}, {"127.0.0.2", nil, 101}, {"127.0.0.3", nil, 429}, {"127.0.0.1", nil, 429},
		}},
		{"per address", proxy.Config{RegisterRate: 0.5, RegisterBurst: 1}, []try{
			{"127.0.0.1", nil, 101}, {"127.0.0.1", nil, 429}, {"127.0.0.2", nil, 101}, {"127.0.0.2", nil, 429},
		}},
		{"X-Forwarded-For of an untrusted peer is ignored", proxy.Config{RegisterRate: 0.5, RegisterBurst: 1}, []try{
			{"127.0.0.1", xff("198.51.100.1"), 101}, {"127.0.0.1", xff("198.51.100.2"), 429},
		}},
		{"X-Forwarded-For of a trusted front names the source", proxy.Config{RegisterRate: 0.5, RegisterBurst: 1, TrustedProxies: trusted}, []try{
			{"127.0.0.1", xff("198.51.100.1"), 101}, {"127.0.0.1", xff("198.51.100.1"), 429},
			{"127.0.0.1", xff("198.51.100.2"), 101},
			{"127.0.0.1", xff("198.51.100.2, 127.0.0.1"), 429},                               // the front's own hop is skipped
			{"127.0.0.1", xff("198.51.100.1, 198.51.100.3"), 101},                            // a visitor's own entry is not
			{"127.0.0.2", xff("198.51.100.4"), 101}, {"127.0.0.2", xff("198.51.100.5"), 429}, // 127.0.0.2 is no front
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, tt.cfg)
			for i, tr := range tt.tries {
				code, retry, err := registerOnce(t, sourceDialer(tr.src), p, tr.hdr)
				if err != nil {
					t.Fatalf("try %d from %s: %v", i, tr.src, err)
				}
				if code != tr.want {
					t.Errorf("try %d from %s %v: got %d, want %d", i, tr.src, tr.hdr, code, tr.want)
				}
				if code == 429 && retry != "2" {
					t.Errorf("try %d: Retry-After %q, want 2 (one registration every 2 s)", i, retry)
				}
			}
		})
	}
}

// Sockets that read the challenge and never answer are bounded: past
// MaxPending the one that has waited longest is dropped with 1013, and a
// real client still registers at once.
func TestRegistrationPendingBound(t *testing.T) {
	p := startProxy(t, proxy.Config{MaxPending: 3})
	var silent []*websocket.Conn
	for range 3 {
		ws, _ := rawLink(t, p)
		silent = append(silent, ws)
	}
	if n := p.Stats().RegisterDropped.Load(); n != 0 {
		t.Fatalf("dropped %d at the bound, want 0", n)
	}
	fourth, ch := rawLink(t, p)
	silent[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := silent[0].ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
		t.Errorf("the oldest silent socket: got %v, want a close with 1013", err)
	}
	silent[1].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := silent[1].ReadMessage(); !isTimeout(err) {
		t.Errorf("the second silent socket: got %v, want it still waiting", err)
	}
	if n := p.Stats().RegisterDropped.Load(); n != 1 {
		t.Errorf("dropped %d, want 1", n)
	}
	// A real client, the newest waiter, crowds out the next oldest and
	// registers at once; so does the fourth socket, answering late.
	began := time.Now()
	startClient(t, p, backend(t, echo).URL, newKey(t))
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a client took %v to register, want at once", took)
	}
	q := identity.Register(newKey(t), ch, [16]byte{}, time.Now())
	sendRaw(t, fourth, messages.TypeRegistrationRequest, q.Append(nil))
	if f := readRaw(t, fourth); f.Type != messages.TypeRegistrationResponse {
		t.Errorf("the fourth socket: got %v, want RegistrationResponse", f.Type)
	}
	if n := p.Stats().RegisterDropped.Load(); n != 2 {
		t.Errorf("dropped %d, want 2", n)
	}
	if n := p.Stats().LinksRefused.Load(); n != 0 {
		t.Errorf("links refused: %d, want 0 (a dropped socket is counted as dropped only)", n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
