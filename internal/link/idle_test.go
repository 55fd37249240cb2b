package link

import (
	"context"
	"runtime"
	"testing"
	"time"

	"keyhole/messages"
)

// TestIdleLinkIsItsReader: a link with nothing to write keeps no writer
// goroutine, and a frame queued later still goes out (a writer starts for
// it, and leaves again).
func TestIdleLinkIsItsReader(t *testing.T) {
	srv, cli := ends(t, false)
	before := runtime.NumGoroutine()
	c := newLink(srv, Options{PingInterval: time.Hour})
	ended := run(context.Background(), c, discard)
	defer func() {
		c.Close(nil)
		<-ended
	}()

	waitGoroutines(t, before+1, "the link's reader alone")
	for i := range 3 {
		if !c.TrySend(Frame(messages.TypeData, 0, messages.ID{1}, []byte("hello"))) {
			t.Fatalf("send %d: queue refused", i)
		}
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := cli.ReadMessage()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if f, err := messages.Parse(p); err != nil || string(f.Payload) != "hello" {
			t.Fatalf("read %d: got %q, %v; want hello", i, p, err)
		}
		waitGoroutines(t, before+1, "the writer to leave once idle")
	}
}

// TestIdlePing: an idle link still sends its Ping after PingInterval,
// with no writer running in between.
func TestIdlePing(t *testing.T) {
	srv, cli := ends(t, false)
	c := newLink(srv, Options{PingInterval: 300 * time.Millisecond})
	ended := run(context.Background(), c, discard)
	defer func() {
		c.Close(nil)
		<-ended
	}()
	for i := range 2 {
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := cli.ReadMessage()
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if f, err := messages.Parse(p); err != nil || f.Type != messages.TypePing {
			t.Fatalf("ping %d: got %v, %v; want a Ping", i, f.Type, err)
		}
	}
}

func waitGoroutines(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: got %d goroutines, want %d", what, runtime.NumGoroutine(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
