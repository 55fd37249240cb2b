package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/proxy"
)

// These tests drive real clients: Node's ws package and headless
// Chromium. `make test` installs ws (npm ci) and CI installs chromium;
// a missing one fails the test with how to get it, it never skips.

func TestNodeWebSocketClient(t *testing.T) {
	p, e, c := wsSetup(t)
	out := runNodeWS(t, "wsclient.js", c.url+"/node", p.addr)
	var seen struct {
		Error    string
		Protocol string
		Messages []struct {
			Binary bool
			Hex    string
		}
		Close struct {
			Code   int
			Reason string
		}
	}
	if err := json.Unmarshal(out, &seen); err != nil || seen.Error != "" {
		t.Fatalf("node printed %s (%v)", out, err)
	}
	text := hex.EncodeToString([]byte("héllo from node ✓"))
	want := []struct {
		binary bool
		hex    string
	}{{false, text}, {true, "00ff01fec328"}}
	if len(seen.Messages) != 2 {
		t.Fatalf("got %d messages back, want 2", len(seen.Messages))
	}
	for i, w := range want {
		if m := seen.Messages[i]; m.Binary != w.binary || m.Hex != w.hex {
			t.Errorf("message %d: got binary=%v %s, want binary=%v %s", i, m.Binary, m.Hex, w.binary, w.hex)
		}
	}
	if seen.Protocol != "chat.v1" {
		t.Errorf("subprotocol: got %q, want chat.v1", seen.Protocol)
	}
	// The close reply is the service's own: it echoes the code with no
	// reason, and the tunnel passes on exactly that.
	if seen.Close.Code != 4001 || seen.Close.Reason != "" {
		t.Errorf("close: got %d %q, want the service's reply 4001 with no reason", seen.Close.Code, seen.Close.Reason)
	}
	select {
	case ce := <-e.closed:
		if ce.Code != 4001 || ce.Text != "node says bye" {
			t.Errorf("service: got close %d %q, want 4001 %q", ce.Code, ce.Text, "node says bye")
		}
	case <-time.After(5 * time.Second):
		t.Error("service saw no close")
	}
	h := <-e.seen
	if h.Get("Origin") != "http://node.example" || h.Get("Cookie") != "who=node" {
		t.Errorf("service saw Origin %q Cookie %q", h.Get("Origin"), h.Get("Cookie"))
	}
}

// page is served by the private service: it opens a WebSocket back to
// its own origin, through the tunnel, and reports the echo it got.
const page = `<!doctype html>
<html><head><title>keyhole browser test</title></head><body>
<p id="status">waiting</p>
<script>
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws', ['chat.v1']);
ws.binaryType = 'arraybuffer';
const sent = 'browser says héllo ✓';
ws.onopen = () => ws.send(sent);
ws.onmessage = (ev) => {
  const ok = ev.data === sent && ws.protocol === 'chat.v1';
  document.getElementById('status').textContent = ok ? 'echo ok' : 'echo wrong';
  fetch('/result?ok=' + ok + '&protocol=' + encodeURIComponent(ws.protocol) + '&data=' + encodeURIComponent(ev.data));
  ws.close(1000, 'done');
};
ws.onerror = () => fetch('/result?ok=false&error=1');
</script></body></html>`

func TestBrowserWebSocketEcho(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is missing: apt-get install chromium (CI does): %v", err)
	}
	results := make(chan string, 4)
	up := websocket.Upgrader{Subprotocols: []string{"chat.v1"}}
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
		case "/ws":
			ws, err := up.Upgrade(w, r, nil)
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
		case "/result":
			results <- r.URL.RawQuery
		}
	})
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be.URL, newKey(t))
	// Chromium runs in real time until the page reports back (or 30s),
	// then it is stopped: a loaded machine only makes it slower.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--user-data-dir="+t.TempDir(), c.url+"/")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	defer cmd.Wait()
	defer cancel()
	select {
	case q := <-results:
		if !strings.HasPrefix(q, "ok=true&protocol=chat.v1") {
			t.Errorf("the page reported %q, want ok=true with protocol chat.v1", q)
		}
	case <-ctx.Done():
		cancel()
		cmd.Wait()
		t.Fatalf("the page never reported its echo; chromium printed:\n%s", out.String())
	}
}

// runNodeWS runs a script of testdata/node against the WebSocket at url,
// every connection going to the proxy at addr, and returns what it
// printed. A missing ws package fails the test with how to get it.
func runNodeWS(t *testing.T, script, url, addr string) []byte {
	t.Helper()
	dir, _ := filepath.Abs("testdata/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		t.Fatalf("the ws package is missing: run `npm ci --prefix internal/e2e/testdata/node` (make test does): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", filepath.Join(dir, script), strings.Replace(url, "http://", "ws://", 1), addr).Output()
	if err != nil {
		t.Fatalf("node %s: %v: %s", script, err, out)
	}
	return out
}
