package loadtool

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/messages"
)

// register answers the proxy's challenge on ws.
func register(ws *websocket.Conn, key ed25519.PrivateKey, instance [messages.InstanceSize]byte) error {
	ws.SetReadLimit(messages.MaxFrame)
	deadline := time.Now().Add(10 * time.Second)
	ws.SetReadDeadline(deadline)
	ws.SetWriteDeadline(deadline)
	defer ws.SetReadDeadline(time.Time{})
	defer ws.SetWriteDeadline(time.Time{})
	f, err := read(ws)
	if err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	if f.Type != messages.TypeChallenge {
		return fmt.Errorf("read challenge: got %v", f.Type)
	}
	ch, err := messages.ParseChallenge(f.Payload)
	if err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	req := identity.Register(key, ch, instance, time.Now())
	frame := messages.Frame{Type: messages.TypeRegistrationRequest, Payload: req.Append(nil)}
	if err := ws.WriteMessage(websocket.BinaryMessage, frame.Append(nil)); err != nil {
		return fmt.Errorf("send registration: %w", err)
	}
	if f, err = read(ws); err != nil {
		return fmt.Errorf("read registration response: %w", err)
	}
	if f.Type != messages.TypeRegistrationResponse {
		return fmt.Errorf("registration: got %v, want RegistrationResponse", f.Type)
	}
	return nil
}

func read(ws *websocket.Conn) (messages.Frame, error) {
	_, p, err := ws.ReadMessage()
	if err != nil {
		return messages.Frame{}, err
	}
	return messages.Parse(p)
}

// okResponse is the answer to every request: 200 with an empty body.
var okResponse = func() []byte {
	head, err := messages.AppendResponseHead(nil, &messages.ResponseHead{Status: 200, ContentLength: 0})
	if err != nil {
		panic(err)
	}
	return head
}()

// answer serves one registered link until it fails: it echoes Pings and
// answers HTTP requests; the proxy's own idle Pings keep it alive.
func (f *Fleet) answer(ws *websocket.Conn) error {
	for {
		fr, err := read(ws)
		if err != nil {
			return err
		}
		var out messages.Frame
		switch {
		case fr.Type == messages.TypePing && fr.Flags&messages.FlagPong == 0:
			out = messages.Frame{Type: messages.TypePing, Flags: messages.FlagPong, ID: fr.ID, Payload: fr.Payload}
		case fr.Type == messages.TypeHTTPRequest:
			out = messages.Frame{Type: messages.TypeHTTPResponse, Flags: messages.FlagEnd, ID: fr.ID, Payload: okResponse}
			f.Served.Add(1)
		case fr.Type == messages.TypeGoAway:
			return fmt.Errorf("proxy sent GoAway")
		default:
			continue
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, out.Append(nil)); err != nil {
			return err
		}
	}
}
