package client

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/link"
	"keyhole/internal/link/linktest"
	"keyhole/messages"
)

// proxyEnd is the proxy's end of a real link to a session under test: it
// writes frames to the session and collects what the session sends.
type proxyEnd struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan messages.Frame // copies of what the session sent
}

// newLink returns a session serving a real link.Conn over a real
// WebSocket on loopback, as dial would have made it after a registration
// of link revision 2 (credit) or 1, and the proxy's end of that link.
func newLink(t *testing.T, credit bool, maxBody int64) (*session, *proxyEnd) {
	t.Helper()
	srv, cli := linktest.Pair(t)
	p := &proxyEnd{t: t, ws: srv, frames: make(chan messages.Frame, 4096)}
	s := &session{
		log:     slog.New(slog.DiscardHandler),
		credit:  credit,
		maxBody: maxBody,
		goAway:  make(chan struct{}),
		done:    make(chan struct{}),
		streams: make(map[messages.ID]*stream),
	}
	s.conn = link.New(cli, link.Options{Client: true, Logger: s.log})
	go s.run(context.Background())
	go p.read()
	t.Cleanup(func() {
		s.conn.Close(nil)
		<-s.done
		p.ws.Close()
	})
	return s, p
}

func (p *proxyEnd) read() {
	defer close(p.frames)
	for {
		_, data, err := p.ws.ReadMessage()
		if err != nil {
			return
		}
		f, err := messages.Parse(data)
		if err != nil {
			p.t.Errorf("the session sent a malformed frame: %v", err)
			return
		}
		f.Payload = bytes.Clone(f.Payload)
		p.frames <- f
	}
}

// send writes a frame to the session.
func (p *proxyEnd) send(typ messages.Type, flags messages.Flags, id messages.ID, payload []byte) {
	p.t.Helper()
	b := messages.AppendHeader(nil, typ, flags, id)
	if err := p.ws.WriteMessage(websocket.BinaryMessage, append(b, payload...)); err != nil {
		p.t.Fatalf("proxy write: %v", err)
	}
}

// next returns the next frame the session sent, within 5 s.
func (p *proxyEnd) next() messages.Frame {
	p.t.Helper()
	select {
	case f, ok := <-p.frames:
		if !ok {
			p.t.Fatal("the link ended")
		}
		return f
	case <-time.After(5 * time.Second):
		p.t.Fatal("nothing from the session after 5 s")
		return messages.Frame{}
	}
}

// mark is a frame the test sends through the session's own queue, so that
// the proxy end knows everything queued before it has arrived.
var mark = []byte("mark")

// upToMark returns every frame the session queued before now.
func (p *proxyEnd) upToMark(s *session) []messages.Frame {
	p.t.Helper()
	if err := s.conn.Send(context.Background(), link.Frame(messages.TypePing, messages.FlagPong, messages.ID{}, mark)); err != nil {
		p.t.Fatalf("send the mark: %v", err)
	}
	var fs []messages.Frame
	for {
		f := p.next()
		if f.Type == messages.TypePing && bytes.Equal(f.Payload, mark) {
			return fs
		}
		fs = append(fs, f)
	}
}

// credits returns the increments of the Credit frames among fs for id.
func credits(t *testing.T, fs []messages.Frame, id messages.ID) []uint32 {
	t.Helper()
	var got []uint32
	for _, f := range fs {
		if f.Type != messages.TypeCredit {
			continue
		}
		if f.ID != id {
			t.Errorf("got Credit on %v, want it on %v", f.ID, id)
		}
		n, err := messages.ParseCredit(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	return got
}

// openStream opens an HTTP stream on s, as an HTTPRequest would.
func openStream(t *testing.T, s *session, id messages.ID) *stream {
	t.Helper()
	st := s.open(id, false, &messages.RequestHead{})
	if st == nil {
		t.Fatalf("stream %v not opened", id)
	}
	t.Cleanup(func() { s.close(st) })
	return st
}
