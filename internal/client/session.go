package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/link"
	"keyhole/internal/sock"
	"keyhole/limiter"
	"keyhole/messages"
)

var dialer = websocket.Dialer{
	NetDialContext:   sock.Dialer((&net.Dialer{}).DialContext),
	Proxy:            http.ProxyFromEnvironment,
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   64 << 10,
	WriteBufferSize:  messages.MaxFrame + 16,
}

// drainGrace bounds how long an old link stays open after a new one is up.
const drainGrace = 30 * time.Second

// session is one registered link and the streams it serves.
type session struct {
	c    *Client
	conn *link.Conn
	log  *slog.Logger
	url  string
	// What the proxy said when it registered the link: whether HTTP
	// bodies travel with credit (link revision 2), and its cap on bodies
	// and WebSocket messages (math.MaxInt64 for none).
	credit  bool
	maxBody int64

	goAway   chan struct{} // closed when the proxy sends GoAway
	done     chan struct{} // closed when run returns
	err      error         // why the link ended; set before done is closed
	awayOnce sync.Once
	wg       sync.WaitGroup // one per stream
	workers  workers        // run the streams' handlers

	mu      sync.Mutex // protects streams
	streams map[messages.ID]*stream
}

// dial opens a link and registers it.
func (c *Client) dial(ctx context.Context) (*session, error) {
	ws, resp, err := dialer.DialContext(ctx, c.connect, http.Header{messages.RevisionHeader: {strconv.Itoa(messages.Revision)}})
	if err != nil {
		if resp != nil {
			return nil, upgradeError(c.connect, resp)
		}
		return nil, fmt.Errorf("connect %s: %w", c.connect, err)
	}
	reg, err := c.register(ws)
	if err != nil {
		ws.Close()
		return nil, err
	}
	url := reg.URL
	s := &session{
		c:       c,
		log:     c.log,
		url:     url,
		credit:  reg.Revision >= 2,
		maxBody: limiter.DefaultMaxBody, // what a proxy of revision 1 enforces by default

		goAway:  make(chan struct{}),
		done:    make(chan struct{}),
		streams: make(map[messages.ID]*stream),
	}
	s.conn = link.New(ws, link.Options{PingInterval: c.cfg.PingInterval, Timeout: c.cfg.Timeout, Logger: c.log, Client: true})
	if s.credit {
		s.maxBody = math.MaxInt64
		if reg.MaxBody > 0 && reg.MaxBody < math.MaxInt64 {
			s.maxBody = int64(reg.MaxBody)
		}
	}
	c.log.Info("tunnel up", "url", url)
	if c.cfg.Ready != nil {
		c.cfg.Ready(url)
	}
	return s, nil
}

// register answers the proxy's challenge and returns its answer.
func (c *Client) register(ws *websocket.Conn) (messages.RegistrationResponse, error) {
	var none messages.RegistrationResponse
	ws.SetReadLimit(messages.MaxFrame)
	deadline := time.Now().Add(10 * time.Second)
	ws.SetReadDeadline(deadline)
	ws.SetWriteDeadline(deadline)
	defer ws.SetReadDeadline(time.Time{})
	defer ws.SetWriteDeadline(time.Time{})

	f, err := readFrame(ws)
	if err != nil {
		if errors.Is(err, messages.ErrVersion) {
			// Told, as on a link that is up, before the link closes.
			st := messages.Status{Code: link.StatusVersion, Text: err.Error()}
			ws.WriteMessage(websocket.BinaryMessage, messages.Frame{Type: messages.TypeError, Payload: st.Append(nil)}.Append(nil))
		}
		return none, fmt.Errorf("read challenge: %w", err)
	}
	if f.Type != messages.TypeChallenge {
		return none, fmt.Errorf("read challenge: %w: got %v", messages.ErrMalformed, f.Type)
	}
	ch, err := messages.ParseChallenge(f.Payload)
	if err != nil {
		return none, fmt.Errorf("read challenge: %w", err)
	}
	req := identity.Register(c.cfg.Key, ch, c.instance, time.Now())
	b := link.Frame(messages.TypeRegistrationRequest, 0, messages.ID{}, req.Append(nil))
	err = ws.WriteMessage(websocket.BinaryMessage, b.B)
	b.Free()
	if err != nil {
		return none, fmt.Errorf("send registration: %w", err)
	}
	f, err = readFrame(ws)
	if err != nil {
		return none, fmt.Errorf("read registration response: %w", err)
	}
	switch f.Type {
	case messages.TypeRegistrationResponse:
		resp, err := messages.ParseRegistrationResponse(f.Payload)
		if err != nil {
			return none, fmt.Errorf("read registration response: %w", err)
		}
		return resp, nil
	case messages.TypeError:
		st, _ := messages.ParseStatus(f.Payload)
		return none, refused(st)
	default:
		return none, fmt.Errorf("read registration response: %w: got %v", messages.ErrMalformed, f.Type)
	}
}

// maxRetryAfter bounds how long a Retry-After can hold the client back.
const maxRetryAfter = 5 * time.Minute

// upgradeError describes the answer to an upgrade that did not open a link.
func upgradeError(url string, resp *http.Response) *UpgradeError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	e := &UpgradeError{URL: url, Status: resp.Status, Code: resp.StatusCode, Body: string(body)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return e
}

func readFrame(ws *websocket.Conn) (messages.Frame, error) {
	kind, data, err := ws.ReadMessage()
	if err != nil {
		return messages.Frame{}, err
	}
	if kind != websocket.BinaryMessage {
		return messages.Frame{}, fmt.Errorf("%w: text message", messages.ErrMalformed)
	}
	return messages.Parse(data)
}

// run serves the link until it ends, then ends every stream and waits for
// them.
func (s *session) run(ctx context.Context) {
	defer close(s.done)
	s.err = s.conn.Run(ctx, s.handle)
	s.mu.Lock()
	streams := s.streams
	s.streams = nil
	s.mu.Unlock()
	for _, st := range streams {
		st.cancel()
	}
	s.wg.Wait()
	s.workers.close()
}

// drain leaves a link once a new one is up: it tells the proxy with a
// GoAway, and the proxy opens no new stream on the link and closes it when
// the streams open on it have ended. Only the proxy can tell when the last
// of them has arrived, so the client waits for it, at most drainGrace,
// then closes the link itself.
func (s *session) drain() {
	s.conn.Send(context.Background(), link.Frame(messages.TypeGoAway, 0, messages.ID{}, []byte("registered on a new link")))
	select {
	case <-s.done:
	case <-time.After(drainGrace):
		s.log.Warn("the old link is still open; closing it", "after", drainGrace)
		s.conn.Close(nil)
		<-s.done
	}
}

// handle dispatches one frame from the proxy.
func (s *session) handle(f messages.Frame, b *link.Buffer) error {
	switch f.Type {
	case messages.TypeHTTPRequest:
		head, err := messages.ParseRequestHead(f.Payload)
		b.Free()
		if err != nil {
			s.reject(f.ID, err)
			return nil
		}
		if st := s.open(f.ID, false, &head); st != nil {
			s.wg.Add(1)
			end := f.End()
			s.workers.run(func() { s.serve(st, end) })
		}
	case messages.TypeWSRequest:
		head, err := messages.ParseRequestHead(f.Payload)
		b.Free()
		if err != nil {
			s.reject(f.ID, err)
			return nil
		}
		if st := s.open(f.ID, true, &head); st != nil {
			s.wg.Add(1)
			s.workers.run(func() { s.serve(st, false) })
		}
	case messages.TypeData, messages.TypeWSMessage, messages.TypeWSTeardown, messages.TypeError, messages.TypeCredit:
		if f.ID.IsZero() {
			defer b.Free() // f.Payload lives in b
			if f.Type == messages.TypeError {
				st, _ := messages.ParseStatus(f.Payload)
				return fmt.Errorf("proxy closed the link: %s", st.Text)
			}
			return nil
		}
		s.mu.Lock()
		st := s.streams[f.ID]
		s.mu.Unlock()
		if st == nil {
			b.Free() // the stream has ended; late frames are normal
			return nil
		}
		st.deliver(f, b)
	case messages.TypeGoAway:
		b.Free()
		s.awayOnce.Do(func() { close(s.goAway) })
	default:
		b.Free()
	}
	return nil
}

// open registers a new stream for head; nil if the id is taken or the
// session ended.
func (s *session) open(id messages.ID, ws bool, head *messages.RequestHead) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams == nil || s.streams[id] != nil {
		return nil
	}
	st := newStream(id, s, ws)
	st.head = *head
	s.streams[id] = st
	return st
}

// serve runs one stream on its own goroutine: an HTTP request (noBody
// when its head came with End), or a WebSocket.
func (s *session) serve(st *stream, noBody bool) {
	defer s.wg.Done()
	defer s.close(st)
	if st.ws {
		s.serveWebSocket(st, &st.head)
	} else {
		s.serveHTTP(st, &st.head, noBody)
	}
}

func (s *session) close(st *stream) {
	s.mu.Lock()
	if s.streams != nil {
		delete(s.streams, st.id)
	}
	s.mu.Unlock()
	st.cancel()
	st.Release()
}

// reject answers a stream that cannot be served with an Error frame.
func (s *session) reject(id messages.ID, err error) {
	s.sendError(id, http.StatusBadGateway, err.Error())
}

// sendError queues an Error for stream id. The reader's handler calls it
// too, so it never writes on the caller's goroutine.
func (s *session) sendError(id messages.ID, code int, msg string) {
	st := messages.Status{Code: uint16(code), Text: msg}
	s.conn.Queue(context.Background(), link.Frame(messages.TypeError, 0, id, st.Append(nil)))
}
