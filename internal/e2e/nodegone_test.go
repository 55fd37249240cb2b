package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/client"
	"keyhole/internal/redistest"
	"keyhole/registry/redisreg"
)

// echoOrSocket is a private service that echoes HTTP requests and
// WebSocket messages alike.
func echoOrSocket(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		echo(w, r)
		return
	}
	ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	for {
		typ, msg, err := ws.ReadMessage()
		if err != nil || ws.WriteMessage(typ, msg) != nil {
			return
		}
	}
}

// outcome is one visitor request of a load loop.
type outcome struct {
	tunnel      int
	began, done time.Time
	err         string // "" for success
}

// TestProcessesNodeKilledRoutesAround runs three proxy processes on one
// redis-server, tunnels on nodes n1 and n2, and visitors entering n3.
// n1 dies with SIGKILL under load; its clients register again on n2 while
// n1's routes still linger in Redis. Once a tunnel has registered on n2,
// no request or WebSocket handshake entering n3 after that fails for it:
// the publish to n1 that finds no subscriber sends the request on to n2
// before anything is answered, and n3 routes around n1 from then on. The
// tunnels that were on n2 throughout never fail.
func TestProcessesNodeKilledRoutesAround(t *testing.T) {
	proxyBin, _ := buildBinaries(t)
	srv := redistest.Start(t)
	secret := "process test secret " + rand.Text()
	n1, addr1 := startProxyProcess(t, proxyBin, "n1", srv.URL(), secret)
	_, addr2 := startProxyProcess(t, proxyBin, "n2", srv.URL(), secret)
	_, addr3 := startProxyProcess(t, proxyBin, "n3", srv.URL(), secret)
	lb := startFailoverRelay(t, addr1, addr2) // n1's clients come back on n2
	be := backend(t, echoOrSocket)

	const perNode = 4
	var urls []string
	onN1 := map[int]bool{}
	var registered [2 * perNode]atomic.Int64 // each tunnel's latest registration, in Unix nanoseconds
	for i := range 2 * perNode {
		to := "ws://" + addr2
		if i < perNode {
			to, onN1[i] = "ws://"+lb.addr(), true
		}
		noteRegistration := func(c *client.Config) {
			ready := c.Ready
			c.Ready = func(u string) {
				registered[i].Store(time.Now().UnixNano())
				ready(u)
			}
		}
		urls = append(urls, startClientAt(t, to, be.URL, newKey(t), noteRegistration).url)
	}
	via3 := dialVisitor(addr3, 10*time.Second)
	for i, u := range urls {
		checkEcho(t, fmt.Sprintf("tunnel %d through n3 before the kill", i), via3, u)
	}

	var mu sync.Mutex
	var got []outcome
	record := func(o outcome) {
		mu.Lock()
		got = append(got, o)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{tunnel: i % len(urls), began: time.Now()}
				a := ask(via3, "GET", urls[o.tunnel]+"/load", nil)
				if a.err != nil || a.code != http.StatusOK {
					o.err = fmt.Sprintf("GET: %d %v", a.code, a.err)
				}
				o.done = time.Now()
				record(o)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			o := outcome{tunnel: i % perNode, began: time.Now()}
			ws, err := tryWS(addr3, urls[o.tunnel])
			if err == nil {
				err = wsRoundTrip(ws)
				ws.Close()
			}
			if err != nil {
				o.err = fmt.Sprintf("WebSocket: %v", err)
			}
			o.done = time.Now()
			record(o)
		}
	})

	time.Sleep(500 * time.Millisecond)
	n1.kill()
	killed := time.Now()
	// Past the TTL, n1's routes have expired from Redis, so the whole time
	// they lingered is covered.
	time.Sleep(redisreg.DefaultTTL + time.Second)
	close(stop)
	wg.Wait()

	back := map[int]time.Time{} // when each tunnel was first served after the kill
	for _, o := range got {
		if o.err == "" && o.began.After(killed) {
			if b, ok := back[o.tunnel]; !ok || o.done.Before(b) {
				back[o.tunnel] = o.done
			}
		}
	}
	again := map[int]time.Time{} // when each of n1's tunnels registered on n2
	for i := range perNode {
		if r := time.Unix(0, registered[i].Load()); r.After(killed) {
			again[i] = r
		}
	}
	bad := map[int][]string{}
	served := 0
	for _, o := range got {
		if o.err == "" {
			served++
			continue
		}
		r, ok := again[o.tunnel]
		if !onN1[o.tunnel] || ok && o.began.After(r) {
			bad[o.tunnel] = append(bad[o.tunnel], fmt.Sprintf("%s at %v", o.err, o.began.Sub(killed).Round(time.Millisecond)))
		}
	}
	for i := range urls {
		if _, ok := back[i]; !ok {
			t.Errorf("tunnel %d (on n1: %v) never served through n3 after the kill", i, onN1[i])
		}
		if _, ok := again[i]; onN1[i] && !ok {
			t.Errorf("tunnel %d did not register again after n1's kill", i)
		}
		if len(bad[i]) > 0 {
			t.Errorf("tunnel %d (on n1: %v, registered again %v after the kill) failed %d times through n3 after that, first %q",
				i, onN1[i], again[i].Sub(killed).Round(time.Millisecond), len(bad[i]), bad[i][0])
		}
	}
	since := func(m map[int]time.Time) []time.Duration {
		var d []time.Duration
		for i := range perNode {
			d = append(d, m[i].Sub(killed).Round(time.Millisecond))
		}
		return d
	}
	t.Logf("%d requests and handshakes through n3, %d served; n1's tunnels registered on n2 at %v, first served through n3 at %v",
		len(got), served, since(again), since(back))
}
