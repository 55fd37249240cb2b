package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/client"
	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/messages"
)

// registeredRawLink registers a fresh key over a hand-driven link and
// returns it once the proxy has answered with RegistrationResponse.
func registeredRawLink(t *testing.T, p *testProxy) *websocket.Conn {
	t.Helper()
	ws, ch := rawLink(t, p)
	reg := identity.Register(newKey(t), ch, [16]byte{}, time.Now())
	sendRaw(t, ws, messages.TypeRegistrationRequest, reg.Append(nil))
	if f := readRaw(t, ws); f.Type != messages.TypeRegistrationResponse {
		t.Fatalf("registration: got %v, want RegistrationResponse", f.Type)
	}
	return ws
}

// writeRaw sends b, whatever it holds, as one binary message.
func writeRaw(t *testing.T, ws *websocket.Conn, b []byte) {
	t.Helper()
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
}

// versioned returns an encoded frame whose version byte is v.
func versioned(v byte, typ messages.Type, payload []byte) []byte {
	b := messages.Frame{Type: typ, Payload: payload}.Append(nil)
	b[0] = v
	return b
}

// A frame of another protocol version closes the link, after an Error on
// the link with status 505 that names the version, and is counted; the
// same during registration, where it is also a refused link.
func TestFrameOfAnotherVersion(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	metric := func() string {
		_, body := get(t, "http://"+p.addr+proxy.MetricsPath, "localhost")
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, "keyhole_proxy_version_mismatches_total ") {
				return strings.TrimSpace(line)
			}
		}
		return "no keyhole_proxy_version_mismatches_total"
	}
	expectRefusal := func(t *testing.T, ws *websocket.Conn) {
		t.Helper()
		f := readRaw(t, ws)
		st, err := messages.ParseStatus(f.Payload)
		if f.Type != messages.TypeError || !f.ID.IsZero() || err != nil || st.Code != 505 || !strings.Contains(st.Text, "version 2") {
			t.Fatalf("got %v (id %v) %d %q, want Error on the link, 505, naming version 2", f.Type, f.ID, st.Code, st.Text)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Error("the link is still open")
		}
	}
	t.Run("on a registered link", func(t *testing.T) {
		ws := registeredRawLink(t, p)
		writeRaw(t, ws, versioned(2, messages.TypePing, nil))
		expectRefusal(t, ws)
		// The Error goes out before the link's reader counts and closes.
		waitFor(t, "the mismatch to be counted", func() bool { return metric() == "keyhole_proxy_version_mismatches_total 1" })
	})
	t.Run("during registration", func(t *testing.T) {
		refused := p.Stats().LinksRefused.Load()
		ws, ch := rawLink(t, p)
		reg := identity.Register(newKey(t), ch, [16]byte{}, time.Now())
		writeRaw(t, ws, versioned(2, messages.TypeRegistrationRequest, reg.Append(nil)))
		expectRefusal(t, ws)
		waitFor(t, "the mismatch to be counted", func() bool { return metric() == "keyhole_proxy_version_mismatches_total 2" })
		waitFor(t, "the link to be counted as refused", func() bool { return p.Stats().LinksRefused.Load() == refused+1 })
	})
}

// The client answers a Challenge of another protocol version with an
// Error on the link, status 505, naming the version.
func TestClientRefusesAnotherVersion(t *testing.T) {
	answers := make(chan messages.Frame, 4)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ch := messages.Challenge{Domain: "localhost"}
		payload, _ := ch.Append(nil)
		ws.WriteMessage(websocket.BinaryMessage, versioned(2, messages.TypeChallenge, payload))
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, data, err := ws.ReadMessage(); err == nil {
			if f, err := messages.Parse(data); err == nil {
				answers <- f
			}
		}
	}))
	defer fake.Close()
	cfg := client.Config{Proxy: "ws://" + hostOf(fake.URL), Target: "http://127.0.0.1:1", Key: newKey(t),
		MinBackoff: time.Second, MaxBackoff: time.Second}
	runClient(t, cfg)
	select {
	case f := <-answers:
		st, _ := messages.ParseStatus(f.Payload)
		if f.Type != messages.TypeError || st.Code != 505 || !strings.Contains(st.Text, "version 2") {
			t.Errorf("got %v %d %q, want Error 505 naming version 2", f.Type, st.Code, st.Text)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client sent nothing after a Challenge of version 2")
	}
}
