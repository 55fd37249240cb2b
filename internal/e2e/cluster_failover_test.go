package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
)

// clusterRecovery bounds how long cross-node requests may fail after a
// replica took over a failed master (issue 8, "Done when" item 4).
const clusterRecovery = 10 * time.Second

// TestRedisClusterMasterKilled runs two nodes on a real Redis Cluster of
// three masters and three replicas, a client on node a and visitors
// entering node b, and kills with SIGKILL the master holding a's channel
// under load. Once the replica has taken over, cross-node requests work
// again within clusterRecovery: the nodes reload the slot map and a
// subscribes again on the new master, instead of waiting for go-redis's
// own reload a minute later.
func TestRedisClusterMasterKilled(t *testing.T) {
	cl := redistest.StartReplicatedCluster(t)
	prefix := redistest.Prefix(t)
	start := func(node string) *testProxy {
		b, r := redisNodeOn(t, cl.NewClient(t), prefix)
		return startProxy(t, proxy.Config{Node: node, Bus: b, Registry: r})
	}
	a, b := start("a"), start("b")
	c := startClient(t, a, backend(t, echo).URL, newKey(t))
	viaB := dialVisitor(b.addr, 5*time.Second)
	checkEcho(t, "cross-node before the failover", viaB, c.url)

	channel := prefix + ":node:a"
	master, err := cl.MasterOf(channel)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{began: time.Now()}
				if a := ask(viaB, "GET", c.url+"/load", nil); a.err != nil || a.code != http.StatusOK {
					o.err = fmt.Sprintf("%d %v", a.code, a.err)
				}
				o.done = time.Now()
				mu.Lock()
				got = append(got, o)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	time.Sleep(300 * time.Millisecond)
	master.Kill()
	killed := time.Now()
	var promoted time.Time
	for promoted.IsZero() {
		if m, err := cl.MasterOf(channel); err == nil && m != master {
			promoted = time.Now()
		} else if time.Since(killed) > 20*time.Second {
			t.Fatalf("no replica took over %s's slot within 20s: %v", channel, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replica took over %v after the master's SIGKILL", promoted.Sub(killed).Round(time.Millisecond))

	// Load goes on until requests have succeeded for 3 s in a row, or
	// past the bound.
	lastFail := func() (last time.Time, failed, served int) {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range got {
			if o.err == "" {
				served++
				continue
			}
			failed++
			if o.done.After(last) {
				last = o.done
			}
		}
		return last, failed, served
	}
	for {
		last, _, _ := lastFail()
		if time.Since(last) > 3*time.Second && time.Since(promoted) > 3*time.Second {
			break
		}
		if time.Since(promoted) > clusterRecovery+10*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	last, failed, served := lastFail()
	recovered := max(last.Sub(promoted), 0)
	t.Logf("%d requests served, %d failed; cross-node requests back %v after the replica took over (%v after the kill)",
		served, failed, recovered.Round(time.Millisecond), max(last.Sub(killed), 0).Round(time.Millisecond))
	if recovered > clusterRecovery || time.Since(last) < 3*time.Second {
		t.Errorf("cross-node requests failing %v after the replica took over (last failure %v ago), want working within %v",
			recovered.Round(time.Millisecond), time.Since(last).Round(time.Millisecond), clusterRecovery)
	}
}
