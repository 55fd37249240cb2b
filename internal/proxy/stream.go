package proxy

import (
	"sync/atomic"

	"keyhole/internal/link"
	"keyhole/messages"
)

// Bounds of an HTTP stream's inbox toward a client of link revision 1,
// which sends bodies without credit: a body within the cap in full chunks
// (8 frames), or a stream's many small pieces (server-sent events flushed
// one by one to a visitor that reads slowly). The bytes, which count each
// frame's overhead too, are the real bound; the frame count only backs
// them up. Streams with credit hold what the window allows.
const (
	httpQueueFrames = 1 << 14
	httpQueueBytes  = 2 << 20
)

// stream is the visitor's end of one request: frames from the client wait
// in a bounded inbox the visitor's handler reads.
type stream struct {
	*link.Inbox
	id  messages.ID
	ovf *atomic.Int64 // counts an overflow
}

// newStream returns a stream. With credit its inbox holds what the peer's
// window allows (one frame of overdraft included) and it sends within
// the window the peer grants; without, it has no window.
func newStream(credit bool, ovf *atomic.Int64) *stream {
	var in *link.Inbox
	if credit {
		in = link.NewStreamInbox()
	} else {
		in = link.NewInbox(httpQueueFrames, httpQueueBytes, nil)
	}
	return &stream{Inbox: in, id: messages.NewID(), ovf: ovf}
}

func (s *stream) deliver(f messages.Frame, b *link.Buffer) {
	if !s.Deliver(f, b) {
		s.ovf.Add(1)
	}
}

func (s *stream) fail(err error) { s.Fail(err) }
