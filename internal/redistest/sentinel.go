package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"keyhole/internal/syncbuf"
)

// SentinelMaster is the master name the sentinel of StartSentinel
// monitors.
const SentinelMaster = "keyhole"

// SentinelOptions configure StartSentinel.
type SentinelOptions struct {
	Password         string // requirepass of master and replica (and their masterauth)
	SentinelPassword string // requirepass of the sentinel
}

// Sentinel is a master, a replica and a sentinel monitoring them, each a
// redis-server process on a free loopback port, killed when the test
// ends. Persistence is off.
type Sentinel struct {
	t        testing.TB
	opts     SentinelOptions
	Servers  [2]string // host:port of the first master and the replica
	Sentinel string    // host:port of the sentinel
	procs    []*exec.Cmd
}

// StartSentinel starts a password-protected master and replica and a
// sentinel that monitors them with quorum 1, and waits until the sentinel
// knows the replica.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found on PATH; Redis tests never skip: %v", err)
	}
	s := &Sentinel{t: t, opts: opts}
	dir := t.TempDir() // made before the cleanup that stops the servers, so removed after it
	t.Cleanup(s.stop)
	auth := []string{}
	if opts.Password != "" {
		auth = []string{"--requirepass", opts.Password, "--masterauth", opts.Password}
	}
	// No delay before a full sync: Redis waits 5 s by default for more
	// replicas, and until then the replica holds nothing.
	data := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
		"--repl-diskless-sync-delay", "0"}
	mport := strconv.Itoa(freePort(t))
	s.Servers[0] = s.spawn(bin, "master", mport, s.opts.Password, append(append([]string{"--port", mport}, data...), auth...)...)
	rport := strconv.Itoa(freePort(t))
	s.Servers[1] = s.spawn(bin, "replica", rport, s.opts.Password, append(append([]string{"--port", rport, "--replicaof", "127.0.0.1", mport}, data...), auth...)...)

	sport := freePort(t)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel resolve-hostnames no\n"+
		"sentinel monitor %s 127.0.0.1 %s 1\nsentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		sport, SentinelMaster, mport, SentinelMaster, SentinelMaster, SentinelMaster)
	if opts.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMaster, opts.Password)
	}
	if opts.SentinelPassword != "" {
		conf += fmt.Sprintf("requirepass %s\n", opts.SentinelPassword)
	}
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatalf("redistest: sentinel config: %v", err)
	}
	s.Sentinel = s.spawn(bin, "sentinel", strconv.Itoa(sport), opts.SentinelPassword, path, "--sentinel")
	s.waitReplicas(1)
	return s
}

// spawn starts one redis-server on port and waits for it to answer.
func (s *Sentinel) spawn(bin, name, port, pass string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start %s: %v", name, err)
	}
	s.procs = append(s.procs, cmd)
	addr := net.JoinHostPort("127.0.0.1", port)
	deadline := time.Now().Add(startTimeout)
	for {
		if reply, err := commandAuth(addr, pass, "PING"); err == nil && reply == "PONG" {
			return addr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: %s on %s did not answer PING:\n%s", name, addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReplicas waits until the sentinel reports n replicas of the master.
func (s *Sentinel) waitReplicas(n int) {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := commandAuth(s.Sentinel, s.opts.SentinelPassword, "SENTINEL", "MASTER", SentinelMaster)
		if err == nil && strings.Contains(reply, "num-slaves\n"+strconv.Itoa(n)+"\n") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: sentinel does not see %d replica(s): %q, %v", n, reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Master returns host:port of the master the sentinel names now.
func (s *Sentinel) Master() string {
	s.t.Helper()
	reply, err := commandAuth(s.Sentinel, s.opts.SentinelPassword, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster)
	if err != nil {
		s.t.Fatalf("redistest: sentinel get-master-addr-by-name: %v", err)
	}
	f := strings.Fields(reply)
	if len(f) != 2 {
		s.t.Fatalf("redistest: sentinel get-master-addr-by-name: got %q", reply)
	}
	return net.JoinHostPort(f[0], f[1])
}

// Failover makes the sentinel promote the replica, and waits until it
// names the new master.
func (s *Sentinel) Failover() string {
	s.t.Helper()
	old := s.Master()
	deadline := time.Now().Add(20 * time.Second)
	s.waitInSync(old, deadline)
	for {
		// Until the sentinel has seen the replica in sync it has no
		// replica to promote (NOGOODSLAVE): try again.
		_, err := commandAuth(s.Sentinel, s.opts.SentinelPassword, "SENTINEL", "FAILOVER", SentinelMaster)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "NOGOODSLAVE") || time.Now().After(deadline) {
			s.t.Fatalf("redistest: sentinel failover: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		if m := s.Master(); m != old {
			return m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: sentinel still names %s 20s after FAILOVER", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitInSync waits until the replica of master has every write master
// had when it was asked: a forced failover promotes whatever the replica
// holds, and the failover this package offers is one that loses nothing.
func (s *Sentinel) waitInSync(master string, deadline time.Time) {
	s.t.Helper()
	replica := s.Servers[0]
	if replica == master {
		replica = s.Servers[1]
	}
	want, err := s.replicationField(master, "master_repl_offset")
	for err == nil {
		var link, got string
		if link, err = s.replicationField(replica, "master_link_status"); err != nil {
			break
		}
		if got, err = s.replicationField(replica, "slave_repl_offset"); err != nil {
			break
		}
		w, _ := strconv.ParseInt(want, 10, 64)
		g, _ := strconv.ParseInt(got, 10, 64)
		if link == "up" && g >= w {
			return
		}
		if time.Now().After(deadline) {
			err = fmt.Errorf("link %s, offset %d of %d", link, g, w)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redistest: replica %s not in sync with %s: %v", replica, master, err)
}

// replicationField is one field of INFO replication on addr.
func (s *Sentinel) replicationField(addr, field string) (string, error) {
	info, err := commandAuth(addr, s.opts.Password, "INFO", "replication")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", nil
}

// URL is a --redis URL for this setup: the sentinel's address, the master
// name and both passwords.
func (s *Sentinel) URL() string {
	u := "redis://"
	if s.opts.Password != "" {
		u += ":" + s.opts.Password + "@"
	}
	u += s.Sentinel + "?master_name=" + SentinelMaster
	if s.opts.SentinelPassword != "" {
		u += "&sentinel_password=" + s.opts.SentinelPassword
	}
	return u
}

func (s *Sentinel) stop() {
	for _, c := range s.procs {
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
	}
}

// commandAuth is command after AUTH password (none if empty), on one
// connection. Array replies come back as their elements, one a line.
func commandAuth(addr, password string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var req bytes.Buffer
	write := func(args ...string) {
		fmt.Fprintf(&req, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if password != "" {
		write("AUTH", password)
	}
	write(args...)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	if password != "" {
		if _, err := readReply(rd); err != nil {
			return "", fmt.Errorf("auth: %w", err)
		}
	}
	return readReply(rd)
}

// readReply reads one RESP reply; arrays are flattened one element a line.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad array reply %q", line)
		}
		var out []string
		for range n {
			el, err := readReply(rd)
			if err != nil {
				return "", err
			}
			out = append(out, el)
		}
		return strings.Join(out, "\n") + "\n", nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}
