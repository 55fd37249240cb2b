package wsrelay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestWriteDeadline: a write whose deadline is later than the socket's by
// less than the slack leaves the socket's alone; an earlier one, one much
// later, or none, reaches the socket; and a write blocked on a full
// socket ends at the earlier deadline.
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

	d := NewConn(c, false)
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
		d.SetWriteDeadline(s.at)
		if _, err := d.Write(nil); err != nil {
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
		_, err = d.Write(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write to a full socket: got %v after %v, want the deadline's timeout", err, time.Since(start))
	}
}

// readFrame reads one frame as a peer would: its first byte, and its
// payload unmasked; masked says whether it came masked.
func readFrame(r io.Reader) (b0 byte, masked bool, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(r, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(r, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	var key [4]byte
	if masked = h[1]&0x80 != 0; masked && err == nil {
		_, err = io.ReadFull(r, key[:])
	}
	if err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return h[0], masked, payload, nil
}

// socketPair returns the two ends of a loopback TCP connection.
func socketPair(t *testing.T) (c, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peer, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return c, peer
}

// TestTryWriteMessage: a try writes a whole message as one final frame,
// text or binary, masked on a client's end only, for every length
// encoding; what the peer reads is the message.
func TestTryWriteMessage(t *testing.T) {
	for _, client := range []bool{false, true} {
		c, peer := socketPair(t)
		s := NewConn(c, client)
		for i, n := range []int{0, 1, 7, 125, 126, 1000, 65535, 65536, 200000} {
			text := i%2 == 0
			p := bytes.Repeat([]byte{byte('a' + i)}, n)
			read := make(chan error, 1)
			go func() {
				b0, masked, got, err := readFrame(peer)
				switch want := byte(0x82); {
				case err != nil:
				case text && b0 != 0x81 || !text && b0 != want:
					err = fmt.Errorf("first byte %#x", b0)
				case masked != client:
					err = fmt.Errorf("masked %v", masked)
				case !bytes.Equal(got, p):
					err = fmt.Errorf("got %d bytes, not the message's %d", len(got), len(p))
				}
				read <- err
			}()
			began, whole := s.TryWriteMessage(text, p)
			if n > 65535 && !whole {
				// A large message may not fit at once: the rest waits.
				if err := s.Flush(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
			} else if !began || !whole {
				t.Fatalf("client %v, %d bytes: the try wrote %v, whole %v; want all of it", client, n, began, whole)
			}
			if err := <-read; err != nil {
				t.Errorf("client %v, %d bytes: %v", client, n, err)
			}
		}
	}
}

// TestTryWriteMessageFullSocket: on a socket whose peer does not read,
// tries write until the socket is full, then write nothing. Of a message
// larger than the socket takes at once, the part it took goes first when
// writing resumes, the rest waiting in the Conn meanwhile; the peer reads
// every message whole and in order. A close frame written through the
// Conn ends the tries; the rest a try left still goes before it.
func TestTryWriteMessageFullSocket(t *testing.T) {
	msg := func(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size+i) }
	for _, tc := range []struct {
		name string
		size int // of each message
		part bool
	}{
		{"messages until full", 3000, false},
		{"a message larger than the socket", 4 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := socketPair(t)
			c.(*net.TCPConn).SetWriteBuffer(16 << 10)
			peer.(*net.TCPConn).SetReadBuffer(16 << 10)
			s := NewConn(c, true)
			var sent int
			var part bool
			for ; sent < 10000; sent++ {
				began, whole := s.TryWriteMessage(false, msg(sent, tc.size))
				if !began {
					break
				}
				if !whole {
					part = true
					sent++
					break
				}
			}
			if sent == 0 || sent == 10000 || tc.part && !part {
				t.Fatalf("%d messages went before the socket filled, the last in part %v; want some, the last in part", sent, part)
			}
			if began, _ := s.TryWriteMessage(false, []byte("next")); began {
				t.Fatal("a try wrote to a full socket, or past a frame's rest")
			}
			read := make(chan error, 1)
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			go func() {
				br := bufio.NewReader(peer)
				for i := 0; i < sent; i++ {
					_, _, got, err := readFrame(br)
					if err == nil && !bytes.Equal(got, msg(i, tc.size)) {
						err = fmt.Errorf("message %d: got %d bytes, not the %d sent", i, len(got), len(msg(i, tc.size)))
					}
					if err != nil {
						read <- err
						return
					}
				}
				b0, _, _, err := readFrame(br)
				if err == nil && b0 != 0x88 {
					err = fmt.Errorf("after the messages, a frame %#x, want the close", b0)
				}
				read <- err
			}()
			s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Write([]byte{0x88, 0x80, 0, 0, 0, 0}); err != nil { // a masked close, no status
				t.Fatal(err)
			}
			if err := <-read; err != nil {
				t.Fatal(err)
			}
			if began, _ := s.TryWriteMessage(false, []byte("late")); began {
				t.Error("a try wrote after a close frame")
			}
		})
	}
}
