package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeTimeout is the cluster-node-timeout of a Cluster: how long a master
// may be unreachable before its replica takes over, kept short so tests
// of a failover finish quickly.
const NodeTimeout = time.Second

// Cluster is a Redis Cluster of three masters, each with one replica, on
// six redis-server processes owned by a test.
type Cluster struct {
	t       testing.TB
	Servers []*Server
}

// StartReplicatedCluster runs a six-process Redis Cluster (three masters,
// three replicas, with redis-cli --cluster create) and waits until every
// node reports the cluster ok and every replica is in sync. Its servers
// can be killed, not restarted.
func StartReplicatedCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	for range 6 {
		s := start(t, true, "--cluster-node-timeout", strconv.Itoa(int(NodeTimeout/time.Millisecond)))
		s.joined = true
		c.Servers = append(c.Servers, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster of %v not ready within 30s", args[2:8])
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// ready reports whether every node sees the whole cluster ok and every
// replica's link to its master is up.
func (c *Cluster) ready() bool {
	for _, s := range c.Servers {
		info, err := command(s.Addr(), "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:6") {
			return false
		}
		repl, err := command(s.Addr(), "INFO", "replication")
		if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return false
		}
	}
	return true
}

// NewClient returns a Cluster client for every server, with the short
// timeouts a proxy node should use, closed when the test ends.
func (c *Cluster) NewClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterOf returns the server that is the master of key's slot (a channel
// name for sharded pub/sub) as a running server of the cluster sees it.
func (c *Cluster) MasterOf(key string) (*Server, error) {
	var lastErr error
	for _, s := range c.Servers {
		if !s.running() {
			continue
		}
		m, err := c.masterOf(s.Addr(), key)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("redistest: master of %q: %w", key, lastErr)
}

func (c *Cluster) masterOf(addr, key string) (*Server, error) {
	reply, err := command(addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return nil, err
	}
	slot, err := strconv.Atoi(reply)
	if err != nil {
		return nil, fmt.Errorf("keyslot reply %q: %w", reply, err)
	}
	nodes, err := command(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		if !holds(f[8:], slot) {
			continue
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		for _, s := range c.Servers {
			if s.Addr() == hostPort {
				return s, nil
			}
		}
		return nil, fmt.Errorf("slot %d on %s, not one of the cluster's servers", slot, hostPort)
	}
	return nil, fmt.Errorf("no live master holds slot %d", slot)
}

// holds reports whether CLUSTER NODES slot fields ("0-5460", "7", or
// "[…]" migrations) include slot.
func holds(fields []string, slot int) bool {
	for _, r := range fields {
		if strings.HasPrefix(r, "[") {
			continue
		}
		lo, hi, ok := strings.Cut(r, "-")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && a <= slot && slot <= b {
			return true
		}
	}
	return false
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Failover has a replica of the master of key's slot take over with
// CLUSTER FAILOVER, the old master staying up as its replica, and waits
// until the cluster agrees. It returns the old and the new master.
func (c *Cluster) Failover(key string) (old, promoted *Server) {
	c.t.Helper()
	old, err := c.MasterOf(key)
	if err != nil {
		c.t.Fatal(err)
	}
	replica := c.replicaOf(old)
	if _, err := command(replica.Addr(), "CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("redistest: cluster failover on %s: %v", replica.Addr(), err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := c.MasterOf(key)
		if err == nil && m == replica && c.agree(key, replica) {
			return old, replica
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: %s did not take over from %s within 20s: %v", replica.Addr(), old.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaOf returns a replica of master.
func (c *Cluster) replicaOf(master *Server) *Server {
	c.t.Helper()
	nodes, err := command(master.Addr(), "CLUSTER", "NODES")
	if err != nil {
		c.t.Fatalf("redistest: cluster nodes: %v", err)
	}
	var masterID string
	lines := strings.Split(nodes, "\n")
	for _, line := range lines {
		if f := strings.Fields(line); len(f) >= 4 {
			if hostPort, _, _ := strings.Cut(f[1], "@"); hostPort == master.Addr() {
				masterID = f[0]
			}
		}
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.Contains(f[2], "slave") || f[3] != masterID {
			continue
		}
		hostPort, _, _ := strings.Cut(f[1], "@")
		for _, s := range c.Servers {
			if s.Addr() == hostPort {
				return s
			}
		}
	}
	c.t.Fatalf("redistest: no replica of %s", master.Addr())
	return nil
}

// agree reports whether every running server sees master holding key's
// slot.
func (c *Cluster) agree(key string, master *Server) bool {
	for _, s := range c.Servers {
		if !s.running() {
			continue
		}
		if m, err := c.masterOf(s.Addr(), key); err != nil || m != master {
			return false
		}
	}
	return true
}
