package e2e

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
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
