package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keyhole/internal/proxy"
)

func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	resp, body := do(t, http.DefaultClient, req)
	return resp.StatusCode, body
}

// Health and metrics answer on the apex host (or the proxy's IP address)
// by default; with PrivateMetrics the metrics answer only on OpsHandler,
// which also serves health, and health reports a drain there too.
func TestHealthAndMetrics(t *testing.T) {
	p := startProxy(t, proxy.Config{})
	be := backend(t, echo)
	startClient(t, p, be.URL, newKey(t))
	code, body := get(t, "http://"+p.addr+proxy.MetricsPath, "localhost")
	if code != 200 || !strings.Contains(body, "keyhole_proxy_links_active 1") {
		t.Errorf("metrics on the apex host: got %d %q", code, body)
	}
	if code, body := get(t, "http://"+p.addr+proxy.HealthPath, ""); code != 200 || body != "ok\n" {
		t.Errorf("health by IP address: got %d %q", code, body)
	}

	private := startProxy(t, proxy.Config{PrivateMetrics: true})
	startClient(t, private, be.URL, newKey(t))
	if code, _ := get(t, "http://"+private.addr+proxy.MetricsPath, "localhost"); code != http.StatusNotFound {
		t.Errorf("metrics on the apex host with PrivateMetrics: got %d, want 404", code)
	}
	if code, _ := get(t, "http://"+private.addr+proxy.HealthPath, "localhost"); code != 200 {
		t.Errorf("health on the apex host with PrivateMetrics: got %d, want 200", code)
	}
	ops := httptest.NewServer(private.OpsHandler())
	defer ops.Close()
	code, body = get(t, ops.URL+proxy.MetricsPath, "anything.example")
	if code != 200 || !strings.Contains(body, "keyhole_proxy_links_active 1") {
		t.Errorf("metrics on the ops handler: got %d %q", code, body)
	}
	if code, _ := get(t, ops.URL+proxy.ConnectPath, ""); code != http.StatusNotFound {
		t.Errorf("the ops handler serves client links: got %d, want 404", code)
	}
	go private.Drain(t.Context())
	waitFor(t, "health to say 503 while draining", func() bool {
		code, _ := get(t, ops.URL+proxy.HealthPath, "")
		return code == http.StatusServiceUnavailable
	})
}
