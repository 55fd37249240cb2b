package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/internal/syncbuf"
)

// inspectorURL matches the client's log line that gives the inspector's
// address.
var inspectorURL = regexp.MustCompile(`msg="inspector: traffic and replays" url=(http://\S+)`)

// startInspectedClient runs the client binary with its inspector on a
// free port, and returns its public URL and the inspector's.
func startInspectedClient(t *testing.T, p *testProxy, target string) (public, inspector string) {
	t.Helper()
	_, bin := buildBinaries(t)
	keyFile := filepath.Join(t.TempDir(), "client.key")
	if _, _, err := identity.LoadOrCreate(keyFile); err != nil {
		t.Fatal(err)
	}
	c, public := startProcess(t, "client", bin, "--proxy", p.wsURL(), "--target", target, "--key", keyFile, "--inspect", "127.0.0.1:0")
	waitFor(t, "the inspector's address in the client's log", func() bool {
		m := inspectorURL.FindStringSubmatch(c.stderr.String())
		if m != nil {
			inspector = m[1]
		}
		return m != nil
	})
	return public, inspector
}

// screenshotPath is where a test saves its screenshot: under
// $KEYHOLE_SCREENSHOTS when set, kept after the test, else in its
// temporary directory.
func screenshotPath(t *testing.T, name string) string {
	dir := os.Getenv("KEYHOLE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

type inspectorSide struct {
	Meta            string
	RequestHeaders  [][2]string
	ResponseHeaders [][2]string
	ResponseBody    string
}

func (s inspectorSide) has(headers [][2]string, name, value string) bool {
	for _, h := range headers {
		if h[0] == name && h[1] == value {
			return true
		}
	}
	return false
}

// TestInspectorInBrowser drives the inspector's page in headless
// Chromium: a request through the tunnel (real proxy, the client binary
// with its inspector on, a backend that counts) shows up on the page
// within a second with its status and headers, and the page's replay
// button sends it to the service again and shows the new answer beside
// the old.
func TestInspectorInBrowser(t *testing.T) {
	dir, _ := filepath.Abs("testdata/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is missing: run `npm ci --prefix internal/e2e/testdata/node` (make test does): %v", err)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is missing: apt-get install chromium (CI does): %v", err)
	}
	var count atomic.Int64
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		n := count.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Count", fmt.Sprint(n))
		fmt.Fprintf(w, `{"count":%d,"tag":%q}`, n, r.Header.Get("X-Visitor-Tag"))
	})
	p := startProxy(t, proxy.Config{})
	public, inspector := startInspectedClient(t, p, be.URL)

	shot := screenshotPath(t, "inspector.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "inspector.js"), inspector, shot)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	defer cmd.Wait()
	defer cancel()
	lines := bufio.NewScanner(stdout)
	expect := func(prefix string) string {
		t.Helper()
		if !lines.Scan() {
			cancel()
			cmd.Wait()
			t.Fatalf("node stopped before %q: %v\n%s", prefix, lines.Err(), stderr.String())
		}
		l := lines.Text()
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("node printed %q, want %q…\n%s", l, prefix, stderr.String())
		}
		return strings.TrimPrefix(l, prefix)
	}
	expect("ready")

	path := "/hello?from=browser-test"
	req, _ := http.NewRequest("GET", public+path, nil)
	req.Header.Set("X-Visitor-Tag", "e2e")
	sent := time.Now()
	resp, body := do(t, visitor(p), req)
	if resp.StatusCode != 200 || !strings.Contains(body, `"count":1`) {
		t.Fatalf("through the tunnel: got %d %q, want 200 with count 1", resp.StatusCode, body)
	}
	io.WriteString(stdin, "sent "+path+"\n")
	ms := expect("shown ")
	took := time.Since(sent)
	t.Logf("the request showed up on the page %v after it was sent (%s ms after the page was told)", took.Round(time.Millisecond), ms)
	if took > time.Second {
		t.Errorf("the request showed up on the page %v after it was sent, want within 1s", took)
	}

	var seen struct {
		Error              string
		Original, Replayed inspectorSide
	}
	if err := json.Unmarshal([]byte(expect("")), &seen); err != nil || seen.Error != "" {
		t.Fatalf("node: %v %s\n%s", err, seen.Error, stderr.String())
	}
	t.Logf("screenshot: %s", shot)
	o, r := seen.Original, seen.Replayed
	if !o.has(o.RequestHeaders, "X-Visitor-Tag", "e2e") || !o.has(o.ResponseHeaders, "X-Count", "1") {
		t.Errorf("the page showed headers %v and %v, want X-Visitor-Tag: e2e and X-Count: 1", o.RequestHeaders, o.ResponseHeaders)
	}
	if !strings.Contains(o.ResponseBody, `"count": 1`) {
		t.Errorf("the page showed the answer %q, want the JSON pretty-printed with count 1", o.ResponseBody)
	}
	if !r.has(r.ResponseHeaders, "X-Count", "2") || !strings.Contains(r.ResponseBody, `"count": 2`) || !strings.Contains(r.Meta, "status 200") {
		t.Errorf("the replay showed %q, headers %v, body %q; want status 200, X-Count: 2 and count 2", r.Meta, r.ResponseHeaders, r.ResponseBody)
	}
	if n := count.Load(); n != 2 {
		t.Errorf("the service counted %d requests, want 2", n)
	}
	if _, err := os.Stat(shot); err != nil {
		t.Errorf("no screenshot: %v", err)
	}
}

// The client binary: --inspect on a taken port serves the inspector on
// the next free one and logs it; --inspect off serves none.
func TestProcessesInspectPorts(t *testing.T) {
	_, bin := buildBinaries(t)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	p := startProxy(t, proxy.Config{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	run := func(name, inspect string) (*process, string) {
		keyFile := filepath.Join(t.TempDir(), "client.key")
		return startProcess(t, name, bin, "--proxy", p.wsURL(), "--target", be.URL, "--key", keyFile, "--inspect", inspect)
	}
	on, public := run("client-on", taken.Addr().String())
	var inspector string
	waitFor(t, "the inspector's address in the client's log", func() bool {
		if m := inspectorURL.FindStringSubmatch(on.stderr.String()); m != nil {
			inspector = m[1]
		}
		return inspector != ""
	})
	if !strings.Contains(on.stderr.String(), `msg="inspector port taken; using the next free one" asked=`+taken.Addr().String()) {
		t.Errorf("the client did not log that the port was taken:\n%s", on.stderr.String())
	}
	if strings.Contains(inspector, taken.Addr().String()) {
		t.Errorf("the inspector is at %s, the taken port", inspector)
	}
	do(t, visitor(p), mustRequest(t, "GET", public+"/seen"))
	var list []struct{ Path string }
	getJSON(t, inspector+"api/requests", &list)
	if len(list) != 1 || list[0].Path != "/seen" {
		t.Errorf("the inspector listed %+v, want /seen", list)
	}

	off, public := run("client-off", "off")
	if resp, _ := do(t, visitor(p), mustRequest(t, "GET", public+"/")); resp.StatusCode != 200 {
		t.Fatalf("with the inspector off: got %d, want 200", resp.StatusCode)
	}
	if strings.Contains(off.stderr.String(), "inspector") {
		t.Errorf("with --inspect off the client logged an inspector:\n%s", off.stderr.String())
	}
}
