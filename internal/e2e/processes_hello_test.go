package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/proxy"
)

// TestExampleHello: examples/hello, built and run as a real process,
// prints its URL first and answers / and a WebSocket echo at /ws through
// a real proxy.
func TestExampleHello(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "./examples/hello")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := startProxy(t, proxy.Config{})
	_, url := startProcess(t, "hello", bin, "--proxy", p.wsURL(), "--key", filepath.Join(t.TempDir(), "hello.key"))
	if !strings.HasPrefix(url, "http://") || !strings.HasSuffix(url, ".localhost:"+strings.Split(p.addr, ":")[1]) {
		t.Fatalf("first line: got %q, want the public URL", url)
	}
	req, _ := http.NewRequest("GET", url+"/", nil)
	resp, body := do(t, visitor(p), req)
	if resp.StatusCode != 200 || !strings.Contains(body, "hello from keyhole") {
		t.Errorf("GET /: got %d %q, want 200 with hello from keyhole", resp.StatusCode, body)
	}
	ws, _ := websocketDial(t, p, url+"/ws")
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, m := range []string{"one", "two"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != m {
			t.Errorf("echo: got %q (%v), want %q", got, err, m)
		}
	}
}
