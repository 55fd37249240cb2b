package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsEcho is a workload of WebSocket round trips against the backend's
// echo: conns workers, each on its own socket, each sending a binary
// message of size bytes and waiting for it to come back before the next.
// Its operations are round trips. A worker dials its socket on its first
// round trip, in the warm-up, and again after a failure.
type wsEcho struct {
	size  int
	conns int
}

func (e wsEcho) name() string {
	return fmt.Sprintf("WS echo %s x%d", sizeName(e.size), e.conns)
}

func (e wsEcho) kind() kind { return kindRoundTrips }

func (e wsEcho) run(ctx context.Context, r *runner, rt route) (result, error) {
	return r.loop(ctx, loadSpec{Kind: "ws", URL: "ws" + strings.TrimPrefix(rt.base, "http") + echoPath,
		Dial: rt.dial, Conns: e.conns, Size: int64(e.size)})
}

// echoLoop is the load generator's side of wsEcho.
func echoLoop(ctx context.Context, s loadSpec, w window) (result, error) {
	var dials atomic.Int64
	nd := &net.Dialer{Timeout: 5 * time.Second}
	d := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			return nd.DialContext(ctx, "tcp", s.Dial)
		},
		HandshakeTimeout: 5 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	socks := &sockets{conns: make([]*websocket.Conn, s.Conns)}
	defer socks.closeAll()
	stop := context.AfterFunc(ctx, socks.abort) // unblocks round trips on Ctrl-C
	defer stop()
	msg := payload(int(s.Size))
	bufs := make([]bytes.Buffer, s.Conns)
	res, err := closedLoop(ctx, s.Conns, w, func(ctx context.Context, i int) error {
		c := socks.conns[i] // only worker i sets it
		if c == nil {
			var err error
			if c, err = socks.dial(ctx, d, s.URL, i); err != nil {
				return err
			}
		}
		err := roundTrip(c, msg, &bufs[i])
		if err != nil {
			socks.drop(i)
		}
		return err
	})
	res.dials = dials.Load()
	return res, err
}

// roundTrip sends msg on c and reads the echo into buf.
func roundTrip(c *websocket.Conn, msg []byte, buf *bytes.Buffer) error {
	deadline := time.Now().Add(opTimeout)
	c.SetWriteDeadline(deadline)
	c.SetReadDeadline(deadline)
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	typ, r, err := c.NextReader()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	switch {
	case typ != websocket.BinaryMessage:
		return fmt.Errorf("echo of message type %d, want binary", typ)
	case !bytes.Equal(buf.Bytes(), msg):
		return fmt.Errorf("echo of %d bytes differs from the %d sent", buf.Len(), len(msg))
	}
	return nil
}

// sockets are the workers' WebSockets, one slot per worker. Each worker
// reads its own slot without the lock and sets it with it; abort and
// closeAll take the lock to see every slot.
type sockets struct {
	mu      sync.Mutex
	conns   []*websocket.Conn
	aborted bool
}

var errAborted = errors.New("aborted")

func (s *sockets) dial(ctx context.Context, d *websocket.Dialer, url string, i int) (*websocket.Conn, error) {
	c, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		c.Close()
		return nil, errAborted
	}
	s.conns[i] = c
	return c, nil
}

// drop closes worker i's socket after a failure.
func (s *sockets) drop(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[i]; c != nil {
		c.Close()
		s.conns[i] = nil
	}
}

// abort closes every socket at once, without a close handshake.
func (s *sockets) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	for _, c := range s.conns {
		if c != nil {
			c.Close()
		}
	}
}

// closeAll closes every socket with a close handshake: a normal close
// frame, then at most a second for the peer's answer.
func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for i, c := range s.conns {
		if c == nil {
			continue
		}
		s.conns[i] = nil
		wg.Go(func() {
			defer c.Close()
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			if c.WriteControl(websocket.CloseMessage, msg, deadline) != nil {
				return
			}
			c.SetReadDeadline(deadline)
			for {
				if _, _, err := c.NextReader(); err != nil {
					return // the peer's close frame, or the deadline
				}
			}
		})
	}
	wg.Wait()
}
