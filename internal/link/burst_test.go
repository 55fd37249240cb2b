package link

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected pair of real TCP sockets on loopback.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestBurstReaderTakesWhatIsWaiting: one small read takes all the socket
// holds, and the reads after it are served from the burst until it is
// drained, when the borrowed buffer goes back.
func TestBurstReaderTakesWhatIsWaiting(t *testing.T) {
	if !canBurst {
		t.Skip("no burst reads on this OS")
	}
	a, b := tcpPair(t)
	sent := bytes.Repeat([]byte("0123456789abcdef"), 512) // 8 KiB
	if _, err := b.Write(sent); err != nil {
		t.Fatal(err)
	}
	r := NewBurstReader(a)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	for r.Buffered() == 0 { // the 8 KiB may come in pieces on loopback
		if _, err := r.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		sent = sent[1:]
	}
	waiting := r.Buffered()
	if waiting < 1024 {
		t.Fatalf("after a 1-byte read: %d bytes buffered, want the rest of what was waiting", waiting)
	}
	got := make([]byte, waiting)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent[:waiting]) {
		t.Fatal("buffered bytes differ from those sent")
	}
	if r.Buffered() != 0 || r.buf != nil {
		t.Fatalf("drained: Buffered %d, buffer held %v; want 0 and none", r.Buffered(), r.buf != nil)
	}
}

// TestBurstReaderBytesExact: under a small bufio.Reader, reads of every
// size return the stream byte for byte, across bursts and direct reads,
// then io.EOF when the peer closes.
func TestBurstReaderBytesExact(t *testing.T) {
	a, b := tcpPair(t)
	sent := make([]byte, 3<<20)
	for i := range sent {
		sent[i] = byte(rand.Uint32())
	}
	go func() {
		rest := sent
		for len(rest) > 0 {
			n := min(len(rest), 1+rand.IntN(100<<10))
			b.Write(rest[:n])
			rest = rest[n:]
		}
		b.Close()
	}()
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(NewBurstReader(a), 1<<10)
	var got []byte
	for {
		p := make([]byte, 1+rand.IntN(40<<10))
		n, err := br.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("got %d bytes, want the %d sent, byte for byte", len(got), len(sent))
	}
}

// TestBurstReaderDeadline: a read with nothing to read ends at the
// connection's read deadline, with the error net.Conn gives.
func TestBurstReaderDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	r := NewBurstReader(a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := r.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if r.buf != nil {
		t.Fatal("an empty read holds a buffer")
	}
}
