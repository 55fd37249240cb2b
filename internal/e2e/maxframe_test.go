package e2e

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/hop"
	"keyhole/internal/proxy"
	"keyhole/messages"
)

// A service whose answer has headers that fill one frame exactly
// (MaxFrame bytes, HTTPResponse) reaches the visitor, and the link stays
// up: a frame the protocol allows never drops the link.
func TestResponseHeadFillsOneFrame(t *testing.T) {
	var fill atomic.Int64 // length of the second header
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("X-A", strings.Repeat("a", 60000))
		w.Header().Set("X-B", strings.Repeat("b", int(fill.Load())))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	})
	// The head as the client will encode it, from what the service sends.
	resp, err := http.Get(be.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hop.Remove(resp.Header)
	rh := messages.ResponseHead{Status: resp.StatusCode, ContentLength: resp.ContentLength, Header: resp.Header}
	head, err := messages.AppendResponseHead(nil, &rh)
	if err != nil {
		t.Fatal(err)
	}
	fill.Store(int64(messages.MaxPayload - len(head)))
	resp, _ = http.Get(be.URL)
	resp.Body.Close()
	hop.Remove(resp.Header)
	rh.Header = resp.Header
	if head, _ = messages.AppendResponseHead(nil, &rh); messages.HeaderSize+len(head) != messages.MaxFrame {
		t.Fatalf("the head makes a frame of %d bytes, want %d", messages.HeaderSize+len(head), messages.MaxFrame)
	}

	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be.URL, newKey(t))
	hc := visitor(p)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", c.url+"/", nil)
		got, _ := do(t, hc, req)
		if got.StatusCode != http.StatusOK || len(got.Header.Get("X-A")) != 60000 || len(got.Header.Get("X-B")) != int(fill.Load()) {
			t.Fatalf("request %d: got %d with headers of %d and %d bytes, want 200 with %d and %d",
				i, got.StatusCode, len(got.Header.Get("X-A")), len(got.Header.Get("X-B")), 60000, fill.Load())
		}
	}
	if n := p.Stats().LinksAccepted.Load(); n != 1 {
		t.Errorf("links accepted: got %d, want 1 (the link dropped and came back)", n)
	}
}

// A frame of a type this version does not know, of MaxFrame bytes, is
// ignored and the link goes on; one byte more closes the link.
func TestUnknownFrameOfMaxFrameBytes(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	ws := registeredRawLink(t, p)
	frame := messages.Frame{Type: 200, Payload: make([]byte, messages.MaxPayload)}.Append(nil)
	if len(frame) != messages.MaxFrame {
		t.Fatalf("frame of %d bytes, want %d", len(frame), messages.MaxFrame)
	}
	writeRaw(t, ws, frame)
	sendRaw(t, ws, messages.TypePing, []byte("still there?"))
	if f := readRaw(t, ws); f.Type != messages.TypePing || f.Flags&messages.FlagPong == 0 || string(f.Payload) != "still there?" {
		t.Fatalf("after an unknown frame of MaxFrame bytes: got %v %q, want the Ping's answer", f.Type, f.Payload)
	}
	writeRaw(t, ws, append(frame, 0))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("a frame of MaxFrame+1 bytes: the link is still open")
	}
}
