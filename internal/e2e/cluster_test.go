package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/bus"
	"keyhole/internal/proxy"
	"keyhole/registry"
)

// clusterSuite runs the cross-node tests against any bus and registry.
func clusterSuite(t *testing.T, newShared func(t *testing.T, node string) (bus.Bus, registry.Registry)) {
	start := func(t *testing.T, n int, cfg proxy.Config) []*testProxy {
		var ps []*testProxy
		for i := 0; i < n; i++ {
			c := cfg
			c.Node = string(rune('a' + i))
			c.Bus, c.Registry = newShared(t, c.Node)
			ps = append(ps, startProxy(t, c))
		}
		return ps
	}
	// The public URL names node a's port; visitors reach node b by
	// dialing it with the same Host.
	t.Run("HTTP through the other node, byte-exact", func(t *testing.T) {
		ps := start(t, 2, proxy.Config{})
		c := startClient(t, ps[0], backend(t, echo).URL, newKey(t))
		for _, size := range []int{0, 1024, 400 << 10} {
			body := make([]byte, size)
			rand.Read(body)
			resp, err := visitor(ps[1]).Post(c.url+"/x?y=1", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("X-Uri") != "/x?y=1" {
				t.Errorf("%d bytes: got %d with %d bytes, want 200 with the body back byte-exact", size, resp.StatusCode, len(got))
			}
		}
		if ps[1].Stats().RemoteRequests.Load() == 0 {
			t.Error("node b served no request remotely")
		}
		if ps[0].Stats().RemoteRequests.Load() != 0 {
			t.Error("node a went remote for its own client")
		}
	})
	t.Run("WebSocket through the other node", func(t *testing.T) {
		ps := start(t, 2, proxy.Config{})
		e := startWSEcho(t)
		c := startClient(t, ps[0], e.srv.URL, newKey(t))
		ws, _ := wsDial(t, ps[1], c.url, nil, "chat.v1")
		if ws.Subprotocol() != "chat.v1" {
			t.Errorf("subprotocol: got %q, want chat.v1", ws.Subprotocol())
		}
		for i := 0; i < 500; i++ {
			msg := bytes.Repeat([]byte{byte(i)}, i*37)
			ws.WriteMessage(websocket.BinaryMessage, msg)
			_, got, err := ws.ReadMessage()
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d: got %d bytes, %v", i, len(got), err)
			}
		}
		big := make([]byte, 400<<10)
		rand.Read(big)
		ws.WriteMessage(websocket.BinaryMessage, big)
		if _, got, err := ws.ReadMessage(); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("400 KiB message: got %d bytes, %v", len(got), err)
		}
		<-e.seen
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4005, "bye"), time.Now().Add(time.Second))
		select {
		case ce := <-e.closed:
			if ce.Code != 4005 || ce.Text != "bye" {
				t.Errorf("service: got close %d %q, want 4005 bye", ce.Code, ce.Text)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("service saw no close")
		}
	})
	t.Run("unknown host fails fast on any node", func(t *testing.T) {
		ps := start(t, 2, proxy.Config{})
		start := time.Now()
		resp, err := visitor(ps[1]).Get("http://" + strings.Repeat("b", 52) + ".localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || time.Since(start) > time.Second {
			t.Errorf("got %d after %v, want 404 in under a second", resp.StatusCode, time.Since(start))
		}
	})
	t.Run("node holding the link goes away: in-flight request fails fast", func(t *testing.T) {
		ps := start(t, 2, proxy.Config{RequestTimeout: 20 * time.Second})
		started := make(chan struct{}, 1)
		be := backend(t, func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			<-r.Context().Done()
		})
		c := startClient(t, ps[0], be.URL, newKey(t))
		go func() { <-started; ps[0].stop() }()
		begin := time.Now()
		resp, err := visitor(ps[1]).Get(c.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 && resp.StatusCode != 503 {
			t.Errorf("got %d, want 502 or 503", resp.StatusCode)
		}
		if took := time.Since(begin); took > 3*time.Second {
			t.Errorf("took %v, want under 3s", took)
		}
	})
	t.Run("replicas on two nodes share the load", func(t *testing.T) {
		ps := start(t, 3, proxy.Config{})
		be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Replica")) })
		key := newKey(t)
		a := startClient(t, ps[0], be.URL, key, withHeader("X-Replica", "a"))
		startClient(t, ps[1], be.URL, key, withHeader("X-Replica", "b"))
		seen := map[string]int{}
		for i := 0; i < 40; i++ {
			resp, err := visitor(ps[2]).Get(a.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(got)]++
		}
		if seen["a"] == 0 || seen["b"] == 0 {
			t.Errorf("got %v, want requests on both replicas", seen)
		}
	})
}

func TestClusterInMemory(t *testing.T) {
	b, r := bus.NewMemory(), registry.NewMemory()
	clusterSuite(t, func(*testing.T, string) (bus.Bus, registry.Registry) { return b, r })
}
