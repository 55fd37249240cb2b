package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
)

// promtool returns the path of Prometheus's promtool; CI installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is missing: apt-get install prometheus (CI does): %v", err)
	}
	return p
}

// checkMetrics runs promtool check metrics on what url serves.
func checkMetrics(t *testing.T, tool, what, url string) string {
	t.Helper()
	code, body := get(t, url, "")
	if code != http.StatusOK {
		t.Fatalf("%s: %s answered %d", what, url, code)
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: promtool check metrics: %v\n%s", what, err, out)
	}
	return body
}

// metricValue returns the value of one series, as the text format writes
// it (labels in name order), or -1 if it is not there.
func metricValue(body, series string) float64 {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Both binaries' /metrics pass promtool check metrics, under load and with
// --redis, on two nodes with traffic crossing between them.
func TestProcessesMetricsPromtool(t *testing.T) {
	tool := promtool(t)
	proxyBin, clientBin := buildBinaries(t)
	srv := redistest.Start(t)
	secret := "metrics test secret " + rand.Text()
	ops := map[string]string{"a": freeAddr(t), "b": freeAddr(t), "client": freeAddr(t)}
	addrs := map[string]string{}
	procs := map[string]*process{}
	for _, node := range []string{"a", "b"} {
		p, line := startProcess(t, "proxy "+node, proxyBin,
			"--listen", "127.0.0.1:0", "--redis", srv.URL(), "--cluster-secret", secret,
			"--node", node, "--metrics-listen", ops[node], "--log-format", "json")
		_, port, _ := strings.Cut(strings.TrimPrefix(line, "http://"), ":")
		addrs[node] = "127.0.0.1:" + port
		procs[node] = p
	}
	be := backend(t, echo)
	_, url := startProcess(t, "client", clientBin, "--proxy", "ws://"+addrs["a"], "--target", be.URL,
		"--key", filepath.Join(t.TempDir(), "client.key"), "--metrics-listen", ops["client"], "--log-level", "warn")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		hc := dialVisitor(addrs[[]string{"a", "b"}[i%2]], 5*time.Second)
		wg.Go(func() {
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
				select {
				case <-stop:
					return
				default:
				}
				ask(hc, "POST", url+"/load", bytes.Repeat([]byte("x"), 1024))
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	for name, addr := range ops {
		for _, path := range []string{"/metrics", "/_keyhole/metrics"} {
			checkMetrics(t, tool, name+" under load", "http://"+addr+path)
		}
	}
	close(stop)
	wg.Wait()

	b := checkMetrics(t, tool, "node b", "http://"+ops["b"]+"/metrics")
	for _, series := range []string{
		`keyhole_proxy_request_duration_seconds_count{class="2xx",route="cross_node"}`,
		`keyhole_bus_published_total`,
	} {
		if v := metricValue(b, series); v <= 0 {
			t.Errorf("node b: %s is %v, want it moved", series, v)
		}
	}
	if v := metricValue(b, "keyhole_registry_lookup_errors_total"); v != 0 {
		t.Errorf("node b: keyhole_registry_lookup_errors_total is %v, want 0", v)
	}
	c := checkMetrics(t, tool, "client", "http://"+ops["client"]+"/metrics")
	if v := metricValue(c, `keyhole_client_requests_total{class="2xx"}`); v <= 0 {
		t.Errorf("client: 2xx requests %v, want some", v)
	}
	if v := metricValue(c, "keyhole_client_link_up"); v != 1 {
		t.Errorf("client: link_up %v, want 1", v)
	}
	if code, _ := get(t, "http://"+ops["client"]+"/healthz", ""); code != http.StatusOK {
		t.Errorf("client /healthz: got %d", code)
	}
	// --log-format json: every line of node b's log is JSON, its access
	// lines among them.
	waitFor(t, "node b's access lines", func() bool {
		return len(accessLines(t, procs["b"].stderr.String(), "json")) > 0
	})
	if l := accessLines(t, procs["b"].stderr.String(), "json")[0]; l["cross_node"] != "true" || l["node"] != "b" {
		t.Errorf("node b's first access line: got %v, want one crossing nodes", l)
	}
}

// A scrape sees the request counters, the duration histogram and the
// registration refusals move with the requests that caused them.
func TestMetricsMove(t *testing.T) {
	tool := promtool(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		echo(w, r)
	})
	refusedKey := newKey(t)
	p := startProxy(t, proxy.Config{RequestTimeout: 300 * time.Millisecond, Allow: func(label string) bool {
		return label != identity.Label(refusedKey.Public().(ed25519.PublicKey))
	}})
	c := startClient(t, p, be.URL, newKey(t))
	v := visitor(p)
	scrape := func() string { return checkMetrics(t, tool, "proxy", "http://"+p.addr+proxy.MetricsPath) }
	before := scrape()

	for range 3 {
		ask(v, "POST", c.url+"/", []byte("hello"))
	}
	ask(v, "GET", c.url+"/slow", nil)
	_, port, _ := strings.Cut(hostOf(c.url), ":")
	ask(v, "GET", "http://"+strings.Repeat("a", 52)+".localhost:"+port+"/", nil)
	runClient(t, client.Config{Proxy: p.wsURL(), Target: be.URL, Key: refusedKey, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	refusal := `keyhole_proxy_registrations_refused_total{reason="not_allowed"}`
	waitFor(t, "the refusal to be counted", func() bool { return metricValue(scrape(), refusal) >= 1 })

	after := scrape()
	for series, want := range map[string]float64{
		"keyhole_proxy_requests_total":                                                       5, // the 404 for a label with no client too
		"keyhole_proxy_timeouts_total":                                                       1,
		"keyhole_proxy_no_tunnel_total":                                                      1,
		`keyhole_proxy_request_duration_seconds_count{class="2xx",route="local"}`:            3,
		`keyhole_proxy_request_duration_seconds_count{class="5xx",route="local"}`:            1,
		`keyhole_proxy_request_duration_seconds_count{class="4xx",route="none"}`:             1,
		`keyhole_proxy_request_duration_seconds_bucket{class="5xx",route="local",le="+Inf"}`: 1,
		"keyhole_proxy_visitor_bytes_in_total":                                               15,
		refusal:                                                                              1,
	} {
		if got := metricValue(after, series) - max(metricValue(before, series), 0); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	// The bodies of the 504 and the 404 went to their visitors too.
	if got := metricValue(after, "keyhole_proxy_visitor_bytes_out_total") - metricValue(before, "keyhole_proxy_visitor_bytes_out_total"); got <= 15 {
		t.Errorf("keyhole_proxy_visitor_bytes_out_total moved by %v, want over 15", got)
	}
	if metricValue(after, "keyhole_proxy_tunnels") != 1 || !strings.Contains(after, "keyhole_build_info{") {
		t.Errorf("tunnels or build info missing:\n%s", after)
	}
	if !strings.Contains(after, "go_goroutines ") || !strings.Contains(after, "process_cpu_seconds_total ") {
		t.Error("no Go or process collector series")
	}
}
