package sock

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t *testing.T) (a, b *Conn) {
	t.Helper()
	if !supported {
		t.Skip("raw socket calls are written for Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := Listener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	dial := Dialer((&net.Dialer{}).DialContext)
	c, err := dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	ca, ok1 := c.(*Conn)
	sb, ok2 := s.(*Conn)
	if !ok1 || !ok2 {
		t.Fatalf("not wrapped: %T, %T", c, s)
	}
	return ca, sb
}

// small shrinks both ends' socket buffers, so that big transfers wait
// for room and take partial writes.
func small(t *testing.T, cs ...*Conn) {
	for _, c := range cs {
		if err := c.SetWriteBuffer(32 << 10); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadBuffer(32 << 10); err != nil {
			t.Fatal(err)
		}
	}
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>11)
	}
	return p
}

func TestWriteReadBytesExact(t *testing.T) {
	a, b := pair(t)
	small(t, a, b)
	data := pattern(8<<20 + 123)
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(data)
		if err == nil && n != len(data) {
			err = errors.New("short write without an error")
		}
		a.CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
}

func TestWriteBuffersConsumesAndKeepsOrder(t *testing.T) {
	a, b := pair(t)
	small(t, a, b)
	// More buffers than one writev takes, empty ones among them, and more
	// bytes than the socket holds.
	var want bytes.Buffer
	var bufs net.Buffers
	for i := range 3000 {
		p := pattern(i % 700)
		if i%5 == 0 {
			p = nil
		}
		bufs = append(bufs, p)
		want.Write(p)
	}
	orig := len(bufs)
	errc := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = a.WriteBuffers(&bufs)
		a.CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n != int64(want.Len()) || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("wrote %d bytes, read %d, want %d (equal: %v)", n, len(got), want.Len(), bytes.Equal(got, want.Bytes()))
	}
	if len(bufs) != 0 {
		t.Fatalf("%d of %d buffers left unconsumed", len(bufs), orig)
	}
}

func TestReadEOF(t *testing.T) {
	a, b := pair(t)
	a.Write([]byte("last"))
	a.Close()
	p := make([]byte, 16)
	n, err := b.Read(p)
	if err != nil || string(p[:n]) != "last" {
		t.Fatalf("Read = %q, %v", p[:n], err)
	}
	if n, err := b.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	_, b := pair(t)
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	_, err := b.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %v is not a read's", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("returned after %v", waited)
	}
}

func TestWriteDeadline(t *testing.T) {
	a, b := pair(t)
	small(t, a, b)
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := a.Write(make([]byte, 64<<20)) // b never reads
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline = %d, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("Write reported %d bytes written before the timeout", n)
	}
}

func TestClosed(t *testing.T) {
	a, _ := pair(t)
	a.Close()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	bufs := net.Buffers{[]byte("x")}
	if _, err := a.WriteBuffers(&bufs); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBuffers after Close = %v", err)
	}
}

func TestWriteToReset(t *testing.T) {
	a, b := pair(t)
	b.SetLinger(0)
	b.Close() // a reset
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = a.Write([]byte("after the reset"))
	}
	var errno syscall.Errno
	var oe *net.OpError
	if !errors.As(err, &errno) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset connection = %v; want the system's error, as a write's", err)
	}
}

// A read that blocks does not hold up a write on the same connection,
// from another goroutine.
func TestReadAndWriteAtOnce(t *testing.T) {
	a, b := pair(t)
	var wg sync.WaitGroup
	const n = 2000
	for _, c := range []*Conn{a, b} {
		wg.Go(func() {
			p := make([]byte, 64)
			for range n {
				if _, err := io.ReadFull(c, p); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			p := pattern(64)
			for range n {
				if _, err := c.Write(p); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNoAllocations(t *testing.T) {
	a, b := pair(t)
	p := pattern(512)
	q := make([]byte, 512)
	scratch := make(net.Buffers, 0, 2)
	var bufs net.Buffers
	allocs := testing.AllocsPerRun(200, func() {
		a.Write(p)
		io.ReadFull(b, q)
		bufs = append(scratch[:0], p[:100], p[100:]) // WriteBuffers consumes bufs
		a.WriteBuffers(&bufs)
		io.ReadFull(b, q)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a round", allocs)
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if Wrap(c1) != c1 {
		t.Fatal("a pipe was wrapped")
	}
}
