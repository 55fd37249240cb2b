package e2e

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/proxy"
	"keyhole/internal/syncbuf"
)

// The client's one line per request says the status it sent the proxy,
// not the service's when the two differ, and what the proxy said when it
// abandoned the stream.
func TestClientLogSaysWhatTheVisitorGot(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", "512001")
			w.Write(make([]byte, 512001))
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			w.Write([]byte("ok"))
		}
	})
	logs := &syncbuf.Buffer{}
	p := startProxy(t, proxy.Config{RequestTimeout: 300 * time.Millisecond})
	c := startClient(t, p, be.URL, newKey(t), func(cfg *client.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	v := visitor(p)
	for path, want := range map[string]int{"/ok": 200, "/big": 502, "/slow": 504} {
		if got := ask(v, "GET", c.url+path, nil); got.code != want {
			t.Errorf("%s: visitor got %d, want %d", path, got.code, want)
		}
	}
	var lines []accessLine
	waitFor(t, "three request lines", func() bool {
		lines = accessLines(t, logs.String(), "text")
		return len(lines) == 3
	})
	byURI := map[string]accessLine{}
	for _, l := range lines {
		byURI[l["uri"]] = l
	}
	if l := byURI["/ok"]; l["status"] != "200" || l["bytes_out"] != "2" || l["service_status"] != "" {
		t.Errorf("/ok: got %v", l)
	}
	if l := byURI["/big"]; l["status"] != "502" || l["service_status"] != "200" || !strings.Contains(l["err"], "cap") {
		t.Errorf("/big: got %v, want status 502 with service_status 200 and the reason", l)
	}
	if l := byURI["/slow"]; l["proxy_status"] != "504" || !strings.Contains(l["proxy_canceled"], "in time") {
		t.Errorf("/slow: got %v, want the proxy's 504 and its reason", l)
	}
}
