package proxy

import (
	"keyhole/internal/link"
	"keyhole/messages"
)

// Bounds of a stream's inbox. A body within the cap is at most 8 Data
// frames; a WebSocket may queue many small messages for a slow visitor.
const (
	httpQueueFrames = 32
	httpQueueBytes  = 2 << 20
)

// stream is the visitor's end of one request: frames from the client wait
// in a bounded inbox the visitor's handler reads.
type stream struct {
	*link.Inbox
	id  messages.ID
	ovf func() // counts an overflow
}

func newStream(ovf func()) *stream {
	return &stream{Inbox: link.NewInbox(httpQueueFrames, httpQueueBytes, nil), id: messages.NewID(), ovf: ovf}
}

// newWSStream returns a stream with flow control: its inbox holds what the
// peer's window allows (one frame of overdraft included), and it sends
// within the window the peer grants.
func newWSStream(ovf func()) *stream {
	in := link.NewInbox(1<<20, messages.InitialWindow+2*link.Cost(messages.MaxChunk), link.NewWindow(messages.InitialWindow))
	return &stream{Inbox: in, id: messages.NewID(), ovf: ovf}
}

func (s *stream) deliver(f messages.Frame, b *link.Buffer) {
	if !s.Deliver(f, b) {
		s.ovf()
	}
}

func (s *stream) fail(err error) { s.Fail(err) }
