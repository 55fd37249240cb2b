package e2e

import (
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
	"keyhole/internal/syncbuf"
)

// internals are what a visitor must never read on an error page: an
// address, a dial error, Redis, a Go error string.
var internals = regexp.MustCompile(`(?i)\d+\.\d+\.\d+\.\d+(:\d+)?|\[[0-9a-f:]+\](:\d+)?|dial tcp|redis|connection refused|i/o timeout|context deadline|EOF|keyhole client:|x509|bus:`)

// checkErrorPage checks that an error answer is the generic page (status,
// host and request id, nothing internal) and that log has the detail
// under the same request id.
func checkErrorPage(t *testing.T, what string, resp *http.Response, body, host string, wantCode int, log *syncbuf.Buffer, detail string) {
	t.Helper()
	id := resp.Header.Get(proxy.RequestIDHeader)
	if resp.StatusCode != wantCode || id == "" {
		t.Fatalf("%s: got %d with request id %q, want %d with one", what, resp.StatusCode, id, wantCode)
	}
	// The host and the request id are random base32, which can spell
	// "eof" or "redis"; what they say is checked below.
	scrubbed := strings.NewReplacer(host, "HOST", id, "ID").Replace(body)
	if m := internals.FindString(scrubbed); m != "" {
		t.Errorf("%s: the page shows %q:\n%s", what, m, body)
	}
	for _, want := range []string{http.StatusText(wantCode), host, "request id: " + id} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: the page does not say %q:\n%s", what, want, body)
		}
	}
	if log == nil {
		return
	}
	waitFor(t, what+": the log line with the request id and the detail", func() bool {
		for line := range strings.Lines(log.String()) {
			if strings.Contains(line, "request_id="+id) && strings.Contains(line, detail) {
				return true
			}
		}
		return false
	})
}

func loggedProxy(t *testing.T, cfg proxy.Config) (*testProxy, *syncbuf.Buffer) {
	log := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	return startProxy(t, cfg), log
}

// TestErrorPagesShowNoInternals: with the private service refusing, and
// with Redis down under a cluster, visitors get a short generic page and
// the log gets the detail with the page's request id.
func TestErrorPagesShowNoInternals(t *testing.T) {
	t.Run("service refusing", func(t *testing.T) {
		p, log := loggedProxy(t, proxy.Config{})
		dead := backend(t, nil)
		dead.Close()
		c := startClient(t, p, dead.URL, newKey(t))
		req, _ := http.NewRequest("GET", c.url+"/", nil)
		resp, body := do(t, visitor(p), req)
		checkErrorPage(t, "service refusing", resp, body, tunnelHost(c.url), http.StatusBadGateway, log, "connection refused")
	})
	t.Run("no tunnel", func(t *testing.T) {
		p, _ := loggedProxy(t, proxy.Config{})
		host := strings.Repeat("a", 52) + ".localhost"
		req, _ := http.NewRequest("GET", "http://"+host+"/", nil)
		resp, body := do(t, visitor(p), req)
		checkErrorPage(t, "no tunnel", resp, body, host, http.StatusNotFound, nil, "")
	})
	t.Run("redis down", func(t *testing.T) {
		srv := redistest.Start(t)
		prefix := redistest.Prefix(t)
		node := func(name string) (*testProxy, *syncbuf.Buffer) {
			b, r := redisNode(t, srv, prefix)
			return loggedProxy(t, proxy.Config{Node: name, Bus: b, Registry: r})
		}
		a, _ := node("a")
		b, logB := node("b")
		be := backend(t, echo)
		c := startClient(t, a, be.URL, newKey(t))
		srv.Kill()
		req, _ := http.NewRequest("GET", c.url+"/", nil)
		resp, body := do(t, visitor(b), req)
		checkErrorPage(t, "redis down", resp, body, tunnelHost(c.url), http.StatusServiceUnavailable, logB, srv.Addr())
	})
}

// tunnelHost is the hostname of a tunnel URL, without its port.
func tunnelHost(u string) string {
	h, _, _ := strings.Cut(hostOf(u), ":")
	return h
}
