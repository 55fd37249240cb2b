package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/redistest"
)

// TestProcessesSentinelFailover runs two proxy processes on a Sentinel
// setup whose master, replica and sentinel all want passwords, named in
// the --redis URL. A client on node a serves HTTP and WebSocket visitors
// of node b across Redis. Then the sentinel fails the master over while
// visitors keep asking through b: requests fail fast if at all, and
// cross-node HTTP and WebSocket work again within seconds, nothing
// restarted.
func TestProcessesSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Password: "master-pw-" + rand.Text(), SentinelPassword: "sentinel-pw-" + rand.Text()})
	addrA, addrB, viaB, publicURL, wsPublic := crossNodeClients(t, s.URL())
	checkEcho(t, "through node b, across the Sentinel's master", viaB, publicURL)
	ws, err := tryWS(addrB, wsPublic)
	if err != nil {
		t.Fatalf("cross-node WebSocket before the failover: %v", err)
	}
	if err := wsRoundTrip(ws); err != nil {
		t.Fatalf("cross-node WebSocket before the failover: %v", err)
	}
	ws.Close()

	// Load through b during the failover.
	var ok, failed atomic.Int64
	var slowest atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got := ask(viaB, "GET", publicURL+"/load", nil)
			if got.err == nil && got.code == http.StatusOK {
				ok.Add(1)
			} else {
				failed.Add(1)
				if int64(got.took) > slowest.Load() {
					slowest.Store(int64(got.took))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	start := time.Now()
	newMaster := s.Failover()
	t.Logf("sentinel promoted %s %v after FAILOVER", newMaster, time.Since(start))

	deadline := time.Now().Add(15 * time.Second)
	var back time.Duration
	for {
		got := ask(viaB, "GET", publicURL+"/after", nil)
		if got.err == nil && got.code == http.StatusOK {
			if ws, err = tryWS(addrB, wsPublic); err == nil {
				err = wsRoundTrip(ws)
				ws.Close()
				if err == nil {
					back = time.Since(start)
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cross-node HTTP and WebSocket not back 15s after the failover: last %d (%v), ws %v", got.code, got.err, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("failover under load: cross-node HTTP and WebSocket back %v after FAILOVER; %d requests ok, %d failed meanwhile (slowest failure %v)",
		back, ok.Load(), failed.Load(), time.Duration(slowest.Load()))
	if d := time.Duration(slowest.Load()); d >= crossNodeFailFast {
		t.Errorf("a request failed after %v during the failover, want failures within %v", d, crossNodeFailFast)
	}
	// Visitors may be served again before a node's bus sees that its
	// subscription is not on the new master (its watch asks every
	// second). Moving it may lose messages, so the node fails the
	// streams across nodes then under way, fast. The failover is over
	// once both nodes have moved.
	for _, addr := range []string{addrA, addrB} {
		waitFor(t, "the bus of the node on "+addr+" to subscribe on the new master", func() bool {
			_, body := get(t, "http://"+addr+"/_keyhole/metrics", "localhost")
			return metricValue(body, "keyhole_bus_resubscribed_total") >= 1
		})
	}
	checkEcho(t, "through node b after the failover", viaB, publicURL)
}

// TestProcessesShardedCluster runs two proxy processes on a Redis Cluster
// of three masters (sharded pub/sub, route and lease keys on different
// masters): a client on node a serves HTTP and WebSocket visitors of node
// b.
func TestProcessesShardedCluster(t *testing.T) {
	c := redistest.StartSharded(t, 3)
	_, addrB, viaB, publicURL, wsPublic := crossNodeClients(t, c.URL())
	for i := range 5 {
		checkEcho(t, fmt.Sprintf("request %d through node b, across the Cluster", i), viaB, publicURL)
	}
	ws, err := tryWS(addrB, wsPublic)
	if err != nil {
		t.Fatalf("cross-node WebSocket on the Cluster: %v", err)
	}
	defer ws.Close()
	for i := range 5 {
		if err := wsRoundTrip(ws); err != nil {
			t.Fatalf("cross-node WebSocket round trip %d on the Cluster: %v", i, err)
		}
	}
}

// crossNodeClients runs proxy processes a and b on redisURL, with an echo
// client and a WebSocket echo client on node a, and returns node b's
// address, an HTTP client that reaches it, and the two public URLs.
func crossNodeClients(t *testing.T, redisURL string) (addrA, addrB string, viaB *http.Client, publicURL, wsPublic string) {
	t.Helper()
	proxyBin, clientBin := buildBinaries(t)
	secret := "process test secret " + rand.Text()
	_, addrA = startProxyProcess(t, proxyBin, "a", redisURL, secret)
	_, addrB = startProxyProcess(t, proxyBin, "b", redisURL, secret)
	be := backend(t, echo)
	_, publicURL = startProcess(t, "client", clientBin,
		"--proxy", "ws://"+addrA, "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	_, wsPublic = startProcess(t, "ws client", clientBin,
		"--proxy", "ws://"+addrA, "--target", startWSEcho(t).srv.URL, "--key", filepath.Join(t.TempDir(), "ws-client.key"))
	return addrA, addrB, dialVisitor(addrB, 10*time.Second), publicURL, wsPublic
}
