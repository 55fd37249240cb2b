package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestKillRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") {
		t.Fatalf("got URL %q, want redis://127.0.0.1:PORT", s.URL())
	}
	c := s.NewClient(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("got PING answered after Kill, want an error")
	}
	s.Restart()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("got %v after Restart, want PONG", err)
	}
	// Persistence is off: a restarted server is empty, as after a crash.
	var got string
	var err error
	for range 50 { // the pool may hold a connection to the dead process
		if got, err = c.Get(ctx, "k").Result(); err == nil || err.Error() == "redis: nil" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "" {
		t.Fatalf("got %q after restart, want an empty server", got)
	}
}

func TestFreezeThaw(t *testing.T) {
	s := Start(t)
	s.Freeze()
	if err := ping(s.Addr()); err == nil {
		t.Fatal("got PING answered while frozen, want a timeout")
	}
	s.Thaw()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("got %v after Thaw, want PONG", err)
	}
}

func TestCluster(t *testing.T) {
	s := StartCluster(t)
	c := s.NewClient(t)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	s.Kill()
	s.Restart()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("got %v after Restart, want PONG", err)
	}
}

func TestPrefixUnique(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	if a == b {
		t.Fatalf("got the same prefix twice: %q", a)
	}
	if !strings.HasPrefix(a, "test:TestPrefixUnique:") {
		t.Fatalf("got %q, want it to name the test", a)
	}
}

func TestReplicatedClusterFailsOver(t *testing.T) {
	c := StartReplicatedCluster(t)
	cc := c.NewClient(t)
	ctx := context.Background()
	if err := cc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old, err := c.MasterOf("k")
	if err != nil {
		t.Fatal(err)
	}
	masters := map[*Server]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "k"} {
		m, err := c.MasterOf(k)
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = true
	}
	if len(masters) < 2 {
		t.Errorf("eight keys all on one master: got %d masters, want the slots spread", len(masters))
	}
	old.Kill()
	killed := time.Now()
	for {
		m, err := c.MasterOf("k")
		if err == nil && m != old {
			t.Logf("replica %s took over %v after its master's SIGKILL", m.Addr(), time.Since(killed))
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("no replica took over within 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSentinelWithPasswords(t *testing.T) {
	s := StartSentinel(t, SentinelOptions{Password: "master-secret", SentinelPassword: "sentinel-secret"})
	if _, err := commandAuth(s.Servers[0], "", "SET", "k", "v"); err == nil {
		t.Fatal("SET without the password: got nil error, want NOAUTH")
	}
	if _, err := commandAuth(s.Sentinel, "", "SENTINEL", "MASTERS"); err == nil {
		t.Fatal("SENTINEL MASTERS without the sentinel password: got nil error, want NOAUTH")
	}
	first := s.Master()
	if first != s.Servers[0] {
		t.Fatalf("master: got %s, want %s", first, s.Servers[0])
	}
	if got := s.Failover(); got != s.Servers[1] {
		t.Fatalf("after failover: got master %s, want the replica %s", got, s.Servers[1])
	}
}
