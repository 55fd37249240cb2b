package inspect

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// PortTries is how many ports Start tries, from the one asked for up.
const PortTries = 100

// server is the inspector's HTTP server.
type server struct {
	srv  *http.Server
	ln   net.Listener
	done sync.WaitGroup
}

// Start serves the page and the API on addr; if its port is taken, on the
// next free one of the PortTries from it. It returns the address served.
func (in *Inspector) Start(addr string) (net.Addr, error) {
	ln, moved, err := listen(addr)
	if err != nil {
		return nil, fmt.Errorf("inspector: %w", err)
	}
	s := &server{ln: ln, srv: &http.Server{
		Handler:           in.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}}
	in.mu.Lock()
	if in.srv != nil {
		in.mu.Unlock()
		ln.Close()
		return nil, errors.New("inspector: already started")
	}
	in.srv = s
	in.mu.Unlock()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		s.srv.Serve(ln)
	}()
	if moved {
		in.log.Info("inspector port taken; using the next free one", "asked", addr, "addr", ln.Addr().String())
	}
	return ln.Addr(), nil
}

// Close stops the server Start started and waits for it.
func (in *Inspector) Close() error {
	in.mu.Lock()
	s := in.srv
	in.srv = nil
	in.mu.Unlock()
	if s == nil {
		return nil
	}
	err := s.srv.Close()
	s.done.Wait()
	return err
}

// listen binds addr, or the next free port after it; moved says it did.
func listen(addr string) (ln net.Listener, moved bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false, fmt.Errorf("address %q: want host:port: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, false, fmt.Errorf("address %q: want a port from 0 to 65535", addr)
	}
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+i)))
		if err == nil || p == 0 || i+1 >= PortTries || p+i >= 65535 || !errors.Is(err, syscall.EADDRINUSE) {
			return ln, i > 0 && err == nil, err
		}
	}
}
