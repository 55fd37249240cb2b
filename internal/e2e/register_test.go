package e2e

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/messages"
)

// rawLink opens a WebSocket to the proxy's link endpoint and reads the
// challenge, as a hand-written client would.
func rawLink(t *testing.T, p *testProxy) (*websocket.Conn, messages.Challenge) {
	t.Helper()
	return rawLinkWith(t, p, nil)
}

// rawLinkWith is rawLink with the upgrade's header fields h.
func rawLinkWith(t *testing.T, p *testProxy, h http.Header) (*websocket.Conn, messages.Challenge) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(p.wsURL()+proxy.ConnectPath, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	f := readRaw(t, ws)
	if f.Type != messages.TypeChallenge {
		t.Fatalf("got %v first, want Challenge", f.Type)
	}
	ch, err := messages.ParseChallenge(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return ws, ch
}

func readRaw(t *testing.T, ws *websocket.Conn) messages.Frame {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	f, err := messages.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sendRaw(t *testing.T, ws *websocket.Conn, typ messages.Type, payload []byte) {
	t.Helper()
	b := messages.Frame{Type: typ, Payload: payload}.Append(nil)
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	label := identity.Label(pub)
	var instance [16]byte

	// A registration captured from a link that succeeded, for the replay case.
	ws0, ch0 := rawLink(t, p)
	captured := identity.Register(key, ch0, instance, time.Now())
	sendRaw(t, ws0, messages.TypeRegistrationRequest, captured.Append(nil))
	if f := readRaw(t, ws0); f.Type != messages.TypeRegistrationResponse {
		t.Fatalf("valid registration: got %v, want RegistrationResponse", f.Type)
	}
	ws0.Close()

	smallOrder := [32]byte{1} // the identity point
	tests := []struct {
		name    string
		make    func(ch messages.Challenge) []byte
		wantErr string
	}{
		{"forged signature", func(ch messages.Challenge) []byte {
			q := identity.Register(key, ch, instance, time.Now())
			q.Signature[7] ^= 1
			return q.Append(nil)
		}, "signature"},
		{"signature for another domain", func(ch messages.Challenge) []byte {
			ch.Domain = "tunnel.example.com"
			q := identity.Register(key, ch, instance, time.Now())
			return q.Append(nil)
		}, "signature"},
		{"replayed registration", func(messages.Challenge) []byte {
			return captured.Append(nil)
		}, "signature"},
		{"stale timestamp", func(ch messages.Challenge) []byte {
			q := identity.Register(key, ch, instance, time.Now().Add(-2*time.Minute))
			return q.Append(nil)
		}, "time"},
		{"future timestamp", func(ch messages.Challenge) []byte {
			q := identity.Register(key, ch, instance, time.Now().Add(2*time.Minute))
			return q.Append(nil)
		}, "time"},
		{"small-order key", func(ch messages.Challenge) []byte {
			q := messages.RegistrationRequest{PublicKey: smallOrder, Timestamp: time.Now().UnixMilli()}
			q.Signature[0] = 1 // with a zero S, verifies for any message under the identity
			return q.Append(nil)
		}, "key"},
		{"malformed key", func(ch messages.Challenge) []byte {
			q := identity.Register(key, ch, instance, time.Now())
			for i := range q.PublicKey {
				q.PublicKey[i] = 0xff
			}
			return q.Append(nil)
		}, "key"},
		{"truncated registration", func(ch messages.Challenge) []byte {
			q := identity.Register(key, ch, instance, time.Now())
			return q.Append(nil)[:50]
		}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.Stats().LinksRefused.Load()
			ws, ch := rawLink(t, p)
			sendRaw(t, ws, messages.TypeRegistrationRequest, tt.make(ch))
			f := readRaw(t, ws)
			if f.Type != messages.TypeError {
				t.Fatalf("got %v, want Error", f.Type)
			}
			st, _ := messages.ParseStatus(f.Payload)
			if !strings.Contains(strings.ToLower(st.Text), tt.wantErr) {
				t.Errorf("got error %q, want it to mention %q", st.Text, tt.wantErr)
			}
			if _, _, err := ws.ReadMessage(); err == nil {
				t.Errorf("link still open after a refused registration")
			}
			if got := p.Stats().LinksRefused.Load(); got != before+1 {
				t.Errorf("LinksRefused: got %d, want %d", got, before+1)
			}
		})
	}
	// No hostname came out of any of them.
	resp, err := visitor(p).Get("http://" + label + ".localhost:1/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("tunnel after refused registrations: got %d, want 404", resp.StatusCode)
	}
}

func TestRegistrationNeedsAnswerInTime(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	ws, _ := rawLink(t, p)
	sendRaw(t, ws, messages.TypeHTTPResponse, nil) // anything but a registration
	f := readRaw(t, ws)
	if f.Type != messages.TypeError {
		t.Fatalf("got %v, want Error", f.Type)
	}
}

func TestSameKeySameURL(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, echo)
	key := newKey(t)
	first := startClient(t, p, be.URL, key)
	first.stop()
	second := startClient(t, p, be.URL, key)
	if first.url != second.url {
		t.Errorf("got %s after restart, want %s", second.url, first.url)
	}
	want := "http://" + identity.Label(key.Public().(ed25519.PublicKey)) + ".localhost:"
	if !strings.HasPrefix(second.url, want) {
		t.Errorf("got %s, want a URL starting %s", second.url, want)
	}
}

// With Config.Allow, only the keys it allows register; a key refused is
// told why after proving it holds the key, and links of keys allowed no
// longer are closed by CloseDisallowed.
func TestAllowedKeys(t *testing.T) {
	allowedKey, otherKey := newKey(t), newKey(t)
	var mu sync.Mutex
	allowed := map[string]bool{identity.Label(allowedKey.Public().(ed25519.PublicKey)): true}
	p := startProxy(t, proxy.Config{Allow: func(label string) bool {
		mu.Lock()
		defer mu.Unlock()
		return allowed[label]
	}})
	be := backend(t, echo)
	c := startClient(t, p, be.URL, allowedKey)

	// Another key proves itself and is refused with 403 and the reason.
	ws, ch := rawLink(t, p)
	before := p.Stats().LinksRefused.Load()
	reg := identity.Register(otherKey, ch, [16]byte{}, time.Now())
	sendRaw(t, ws, messages.TypeRegistrationRequest, reg.Append(nil))
	f := readRaw(t, ws)
	st, _ := messages.ParseStatus(f.Payload)
	otherLabel := identity.Label(otherKey.Public().(ed25519.PublicKey))
	if f.Type != messages.TypeError || st.Code != http.StatusForbidden || !strings.Contains(st.Text, "not allowed") || !strings.Contains(st.Text, otherLabel) {
		t.Errorf("a key not allowed: got %v %d %q, want Error 403 naming the label", f.Type, st.Code, st.Text)
	}
	if got := p.Stats().LinksRefused.Load(); got != before+1 {
		t.Errorf("LinksRefused: got %d, want %d", got, before+1)
	}
	if n := p.Stats().LinksActive.Load(); n != 1 {
		t.Errorf("got %d links, want only the allowed key's", n)
	}

	// Nothing changed: CloseDisallowed leaves the allowed link alone.
	if n := p.CloseDisallowed(); n != 0 {
		t.Errorf("CloseDisallowed closed %d links of allowed keys", n)
	}
	resp, err := visitor(p).Get(c.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("allowed key's tunnel: got %d, want 200", resp.StatusCode)
	}

	// The key is taken off the list: its link closes, and it cannot
	// register again, so its hostname is gone.
	mu.Lock()
	allowed = map[string]bool{}
	mu.Unlock()
	if n := p.CloseDisallowed(); n != 1 {
		t.Errorf("CloseDisallowed closed %d links, want 1", n)
	}
	waitFor(t, "the revoked key's hostname to answer 404", func() bool {
		resp, err := visitor(p).Get(c.url + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
	time.Sleep(300 * time.Millisecond) // several reconnect attempts
	if n := p.Stats().LinksActive.Load(); n != 0 {
		t.Errorf("got %d links after revoking the key, want 0", n)
	}
}
