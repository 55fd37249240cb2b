package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"keyhole/internal/proxy"
)

// A --target with a path confines visitors to it: a service that decodes
// the path before routing must not be led out of /public by a dot-segment
// or slash in any spelling, so the client refuses such paths with 400 and
// the service never sees them.
func TestTargetPathEscapesRefused(t *testing.T) {
	var hits atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, r.RequestURI)
	})
	p := startProxy(t, proxy.Config{})
	c := startClient(t, p, be.URL+"/public", newKey(t))
	host := hostOf(c.url)
	for _, path := range []string{
		"/%2e%2e/private",
		"/%2E%2E/private",
		"/..%2fprivate",
		"/..%2Fprivate",
		"/.%2e/private",
		"/%2e./private",
		"/%2e/private",
		"/../private",
		"/./private",
		"/a/../../private",
		"/..%5cprivate",
		"/%5c..%5cprivate",
		"/..\\private",
		"/..;/private",
		"/%252e%252e/private",
		"/a%2fb",
		"/%2e%2e?x=1",
	} {
		t.Run(path, func(t *testing.T) {
			before := hits.Load()
			resp, body := rawRequest(t, p.addr, "GET "+path+" HTTP/1.1", host, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("got %d %q, want 400", resp.StatusCode, body)
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the service saw %d requests, want none", n)
			}
		})
	}
	for path, want := range map[string]string{
		"/":                   "/public/",
		"/a.b/..c/.d/x..":     "/public/a.b/..c/.d/x..",
		"/%2ehidden/file%2e":  "/public/%2ehidden/file%2e",
		"/files/100%25?q=../": "/public/files/100%25?q=../",
		"/caf%C3%A9":          "/public/caf%C3%A9",
	} {
		t.Run(path, func(t *testing.T) {
			resp, body := rawRequest(t, p.addr, "GET "+path+" HTTP/1.1", host, nil)
			if resp.StatusCode != http.StatusOK || body != want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
			}
		})
	}
	// A WebSocket handshake goes through the same check.
	before := hits.Load()
	d := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return net.Dial("tcp", p.addr) }}
	ws, resp, err := d.Dial("ws://"+host+"/..%2fprivate", nil)
	if err == nil {
		ws.Close()
		t.Fatal("WebSocket to /..%2fprivate: upgraded, want 400")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest || hits.Load() != before {
		t.Errorf("WebSocket to /..%%2fprivate: got %v (%v), service hit %d times, want 400 and none", resp, err, hits.Load()-before)
	}
	// Without a path in the target, nothing is put in front of the path,
	// so nothing can be escaped: the service gets what the visitor sent.
	c2 := startClient(t, p, be.URL, newKey(t))
	resp, body := rawRequest(t, p.addr, "GET /%2e%2e/x HTTP/1.1", hostOf(c2.url), nil)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, "/%2e%2e/x") {
		t.Errorf("target without a path: got %d %q, want 200 /%%2e%%2e/x", resp.StatusCode, body)
	}
}
