package link

import (
	"context"
	"io"
	"testing"

	"keyhole/messages"
)

// TestWriteFramesAllocs: writing a batch of pooled frames, masked or
// not, allocates nothing.
func TestWriteFramesAllocs(t *testing.T) {
	for _, client := range []bool{false, true} {
		mine, peer := ends(t, client)
		// The peer reads the raw bytes: AllocsPerRun counts every
		// goroutine's allocations, and a WebSocket reader allocates one
		// per message.
		go io.Copy(io.Discard, peer.NetConn())
		c := newLink(mine, Options{Client: client})
		batch := []*Buffer{Chunk(), Chunk()}
		batch[0].Seal(messages.TypeHTTPResponse, 0, idOf(1), 100)
		batch[1].Seal(messages.TypeData, messages.FlagEnd, idOf(1), 1<<10)
		write := func() {
			if err := c.writeFrames(batch); err != nil {
				t.Fatal(err)
			}
		}
		write() // the scratch slice grows once
		if got := testing.AllocsPerRun(100, write); got != 0 {
			t.Errorf("client %v: got %v allocations per batch, want 0", client, got)
		}
		FreeAll(batch)
	}
}

// TestStreamInboxAllocs: a flow-controlled stream's inbox costs two
// allocations (itself with its window, and the channel its consumer
// waits on; the others are made only if they are waited on), and credit
// spent and a head and a body frame through it none more.
func TestStreamInboxAllocs(t *testing.T) {
	ctx := context.Background()
	head, body := Chunk(), Chunk()
	got := testing.AllocsPerRun(100, func() {
		q := NewStreamInbox()
		if err := q.Acquire(ctx, Cost(100)); err != nil { // credit there is: no channel to wait on
			t.Fatal(err)
		}
		head.Seal(messages.TypeHTTPResponse, 0, idOf(1), 100)
		q.Deliver(mustParse(t, head), head)
		q.Next(ctx)
		body.Seal(messages.TypeData, messages.FlagEnd, idOf(1), 1<<10)
		q.Deliver(mustParse(t, body), body)
		q.Next(ctx)
	})
	if got != 2 {
		t.Errorf("got %v allocations per stream, want 2", got)
	}
}

func mustParse(t *testing.T, b *Buffer) messages.Frame {
	f, err := messages.Parse(b.B)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
