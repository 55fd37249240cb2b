// Package redistest starts real redis-server processes for tests: on a free
// loopback port, with persistence off, stopped when the test ends. Tests can
// kill, freeze and restart the server to exercise outages.
//
// A missing redis-server binary fails the test; it never skips, so a CI
// machine without Redis cannot pass by silently testing nothing.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/syncbuf"
)

// startTimeout bounds how long a fresh redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t       testing.TB
	bin     string
	port    int
	cluster bool
	extra   []string // more redis-server arguments
	joined  bool     // one of a Cluster's several servers
	dir     string

	mu     sync.Mutex // protects cmd and exited
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start runs a redis-server on a free 127.0.0.1 port and waits until it
// answers PING. The server is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartCluster runs a single-node Redis Cluster that owns all 16384 slots,
// so a redis.ClusterClient (and sharded pub/sub) can be tested against one
// process.
func StartCluster(t testing.TB) *Server {
	t.Helper()
	s := start(t, true)
	s.assignAllSlots()
	return s
}

func start(t testing.TB, cluster bool, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found on PATH (install it, e.g. apt-get install redis-server); Redis tests never skip: %v", err)
	}
	s := &Server{t: t, bin: bin, cluster: cluster, extra: extra, dir: t.TempDir()}
	t.Cleanup(s.stop)
	// Another process can take the free port between our probe and
	// redis-server's bind; try a few ports before giving up.
	var lastErr error
	for range 5 {
		s.port = freePort(t)
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Addr returns host:port of the server.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns redis://host:port of the server.
func (s *Server) URL() string {
	return "redis://" + s.Addr()
}

// Kill sends SIGKILL and waits until the process is gone. All data is lost
// (persistence is off), as after a crash.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("redistest: Kill: server on %s is not running", s.Addr())
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen process must die too
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same port, empty, and waits until
// it answers PING. A cluster server gets its slots assigned again.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.t.Fatalf("redistest: Restart: server on %s is still running; Kill it first", s.Addr())
	}
	if s.joined {
		s.t.Fatalf("redistest: Restart: server on %s is one of a Cluster's servers; restarting it empty is not supported", s.Addr())
	}
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart on the same port: %v", err)
	}
	if s.cluster {
		s.assignAllSlots()
	}
}

// Freeze stops the process with SIGSTOP: connections stay open and
// commands hang unanswered, as with a stuck server or a silent network.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process with SIGCONT.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatalf("redistest: %v: server on %s is not running", sig, s.Addr())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// NewClient returns a client for the server with the short timeouts a
// proxy node should use, closed when the test ends.
func (s *Server) NewClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if s.cluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 []string{s.Addr()},
			DialTimeout:           time.Second,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
			ContextTimeoutEnabled: true,
			MaxRetries:            1,
		})
	} else {
		c = redis.NewClient(&redis.Options{
			Addr:                  s.Addr(),
			DialTimeout:           time.Second,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
			ContextTimeoutEnabled: true,
			MaxRetries:            1,
		})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key and channel prefix unique to this test, so tests that
// share a server cannot see each other's keys.
func Prefix(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	return "test:" + name + ":" + hex.EncodeToString(b[:])
}

// launch starts redis-server on s.port and waits for PING.
func (s *Server) launch() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if s.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", time.Now().UnixNano()),
		)
	}
	args = append(args, s.extra...)
	out := &syncbuf.Buffer{}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { // owned: every path below waits for exited or hands it to s
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr()) == nil {
			s.mu.Lock()
			s.cmd, s.exited = cmd, exited
			s.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start:\n%s", s.port, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, startTimeout, out.String())
		}
	}
}

// stop kills the server at the end of the test.
func (s *Server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-exited
}

// assignAllSlots gives a fresh single-node cluster every slot and waits
// until it reports cluster_state:ok.
func (s *Server) assignAllSlots() {
	s.t.Helper()
	if _, err := command(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", "0", "16383"); err != nil {
		s.t.Fatalf("redistest: cluster addslotsrange: %v", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		info, err := command(s.Addr(), "CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: cluster not ok within %v: %v %q", startTimeout, err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ping(addr string) error {
	reply, err := command(addr, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("ping: got %q, want PONG", reply)
	}
	return nil
}

// command sends one command in RESP and returns a simple-string,
// integer or bulk-string reply. It needs no client library, so waiting for a server
// does not depend on the code under test.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, ":"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis error: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}
