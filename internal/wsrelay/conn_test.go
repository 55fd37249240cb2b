package wsrelay

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestWriteDeadline: a deadline later than the socket's by less than the
// slack leaves the socket's alone; an earlier one, one much later, or
// none, reaches the socket; and a write blocked on a full socket ends at
// the earlier deadline.
func TestWriteDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept() // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	d := &DeadlineConn{Conn: c}
	now := time.Now()
	steps := []struct {
		at    time.Time
		moves bool
	}{
		{now.Add(30 * time.Second), true},
		{now.Add(30*time.Second + deadlineSlack/2), false}, // a frame soon after
		{now.Add(30*time.Second + 2*deadlineSlack), true},  // a frame seconds later
		{now.Add(time.Second), true},                       // a close frame's own, sooner
		{time.Time{}, true},                                // none
		{now.Add(time.Minute), true},
	}
	for i, s := range steps {
		before := d.set
		if err := d.SetWriteDeadline(s.at); err != nil {
			t.Fatal(err)
		}
		want := before
		if s.moves {
			want = s.at
		}
		if !d.set.Equal(want) {
			t.Errorf("step %d (%v): the socket's deadline is %v, want %v", i, s.at, d.set, want)
		}
	}

	d.SetDeadline(time.Time{})
	d.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	buf := make([]byte, 1<<20)
	for err == nil && time.Since(start) < 5*time.Second {
		_, err = c.Write(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write to a full socket: got %v after %v, want the deadline's timeout", err, time.Since(start))
	}
}
