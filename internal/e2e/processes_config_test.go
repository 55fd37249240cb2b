package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyhole/internal/proxy"
)

// TestClientConfigThreeTunnels: one client process with a config file of
// three tunnels (three keys, three targets) prints one line per tunnel,
// name and URL in file order, and serves all three; a target that dies
// gives 502 on its own tunnel only.
func TestClientConfigThreeTunnels(t *testing.T) {
	_, clientBin := buildBinaries(t)
	p := startProxy(t, proxy.Config{})
	names := []string{"web", "api", "docs"}
	backends := make([]*httptest.Server, len(names))
	for i, name := range names {
		backends[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s host=%s token=%s", name, r.Host, r.Header.Get("X-Token"))
		}))
		t.Cleanup(backends[i].Close)
	}
	dir := t.TempDir()
	port := func(s *httptest.Server) string { u, _ := url.Parse(s.URL); return u.Port() }
	config := fmt.Sprintf(`proxy: %s
log-level: debug
tunnels:
  web:
    target: %s
    key: web.key              # relative to this file's folder
    host-header: rewrite
  api:
    target: %s
    key: keys/api.key
    header:
      - "X-Token: api-secret"
  docs:
    target: %s
    key: docs.key
`, p.wsURL(), backends[0].URL, port(backends[1]), strings.TrimPrefix(backends[2].URL, "http://"))
	path := filepath.Join(dir, "tunnels.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	c := runProcess(t, "client", clientBin, "--config", path)
	var lines []string
	waitFor(t, "three URL lines", func() bool { lines = c.stdout.lines(); return len(lines) >= 3 })
	urls := make([]string, len(names))
	for i, line := range lines {
		name, u, ok := strings.Cut(line, " ")
		if !ok || name != names[i] || !strings.HasPrefix(u, "http://") || strings.Contains(u, " ") {
			t.Fatalf("line %d: got %q, want %q and its URL (stdout %q)", i+1, line, names[i], lines)
		}
		urls[i] = u
	}
	for _, f := range []string{"web.key", "keys/api.key", "docs.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("key %s, relative to the config's folder: %v", f, err)
		}
	}
	hc := visitor(p)
	want := []string{
		"web host=" + hostOf(backends[0].URL) + " token=",
		"api host=" + hostOf(urls[1]) + " token=api-secret",
		"docs host=" + hostOf(urls[2]) + " token=",
	}
	get := func(i int) (int, string) {
		req, _ := http.NewRequest("GET", urls[i]+"/", nil)
		resp, body := do(t, hc, req)
		return resp.StatusCode, body
	}
	for i := range names {
		if code, body := get(i); code != 200 || body != want[i] {
			t.Errorf("%s: got %d %q, want 200 %q", names[i], code, body, want[i])
		}
	}
	backends[1].Close()
	for i := range names {
		code, body := get(i)
		switch {
		case i == 1 && code != http.StatusBadGateway:
			t.Errorf("%s after its target died: got %d %q, want 502", names[i], code, body)
		case i != 1 && (code != 200 || body != want[i]):
			t.Errorf("%s after api's target died: got %d %q, want 200 %q", names[i], code, body, want[i])
		}
	}
	waitFor(t, "a log line naming tunnel api", func() bool { return strings.Contains(c.stderr.String(), "tunnel=api") })
}
