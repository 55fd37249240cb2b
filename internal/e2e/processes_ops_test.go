package e2e

import (
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/redistest"
)

// health sends method to path on the node at addr, as a balancer checks
// it (by IP address), and returns the status, or 0 if it did not answer.
func health(addr, method, path string) int {
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitForWithin is waitFor with a deadline of the caller's.
func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessesStartWithoutRedis starts two proxy processes on a Redis
// address where nothing listens yet. Both start; the node a client links
// to serves it at once; /healthz says 200 and /readyz 503 (not joined).
// Then redis-server starts on that address: within seconds, with nothing
// restarted, both nodes say ready and the other node reaches the tunnel
// across Redis.
func TestProcessesStartWithoutRedis(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	srv := redistest.Start(t)
	srv.Kill() // its port is free now; Restart brings Redis up there
	secret := "process test secret " + rand.Text()
	_, addrA := startProxyProcess(t, proxyBin, "a", srv.URL(), secret)
	_, addrB := startProxyProcess(t, proxyBin, "b", srv.URL(), secret)
	for _, addr := range []string{addrA, addrB} {
		for _, m := range []string{"GET", "HEAD"} {
			if got := health(addr, m, "/healthz"); got != http.StatusOK {
				t.Errorf("%s /healthz with Redis down: got %d, want 200", m, got)
			}
			if got := health(addr, m, "/readyz"); got != http.StatusServiceUnavailable {
				t.Errorf("%s /readyz with Redis down: got %d, want 503", m, got)
			}
		}
	}
	be := backend(t, echo)
	_, publicURL := startProcess(t, "client", clientBin,
		"--proxy", "ws://"+addrA, "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	viaA, viaB := dialVisitor(addrA, 10*time.Second), dialVisitor(addrB, 10*time.Second)
	checkEcho(t, "through node a with Redis down", viaA, publicURL)

	srv.Restart()
	up := time.Now()
	waitForWithin(t, 10*time.Second, "both nodes to say ready once Redis answers", func() bool {
		return health(addrA, "GET", "/readyz") == http.StatusOK && health(addrB, "HEAD", "/readyz") == http.StatusOK
	})
	waitForWithin(t, 10*time.Second, "node b to reach the tunnel across Redis", func() bool {
		return ask(viaB, "GET", publicURL+"/", nil).code == http.StatusOK
	})
	t.Logf("node b served the tunnel across Redis %v after Redis started", time.Since(up))
	checkEcho(t, "through node b, across Redis", viaB, publicURL)
	checkEcho(t, "through node a", viaA, publicURL)
}

// TestProcessesSingleNodeDrain sends SIGTERM to a single proxy process
// (no --redis) while a slow request is under way: its listener stays
// open, /healthz and a new client link answer 503, and the slow request
// finishes with 200 before the process exits.
func TestProcessesSingleNodeDrain(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	px, addr := startProxyBin(t, "proxy", proxyBin, "--drain-timeout", "20s")
	for _, m := range []string{"GET", "HEAD"} {
		for _, path := range []string{"/healthz", "/readyz"} {
			if got := health(addr, m, path); got != http.StatusOK {
				t.Errorf("%s %s: got %d, want 200", m, path, got)
			}
		}
	}
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		w.Write([]byte("done"))
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the backend closes, should the test stop early
	_, publicURL := startProcess(t, "client", clientBin,
		"--proxy", "ws://"+addr, "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	slow := make(chan answer, 1)
	go func() { slow <- ask(dialVisitor(addr, 30*time.Second), "GET", publicURL+"/slow", nil) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach the service")
	}

	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/healthz to say 503 while draining", func() bool {
		return health(addr, "GET", "/healthz") == http.StatusServiceUnavailable
	})
	if got := health(addr, "HEAD", "/healthz"); got != http.StatusServiceUnavailable {
		t.Errorf("HEAD /healthz while draining: got %d, want 503", got)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/_keyhole/connect", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Errorf("a new link while draining: got %d (err %v), want 503", code, err)
	}
	select {
	case <-px.exited:
		t.Fatal("the proxy exited with a request in flight")
	default:
	}
	unblock()
	got := <-slow
	if got.err != nil || got.code != http.StatusOK || string(got.body) != "done" {
		t.Errorf("the request in flight at SIGTERM: got %d %q (err %v), want 200 \"done\"", got.code, got.body, got.err)
	}
	select {
	case <-px.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not exit once its request had finished")
	}
}

// TestProcessesRefusedKeyExits runs a client binary whose key the proxy
// does not allow: it exits with status 1 within 5 s, having said on one
// line that the key is refused (403) and what to do, and never that it is
// retrying or that a link was lost.
func TestProcessesRefusedKeyExits(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "allowed")
	if err := os.WriteFile(list, []byte("# nobody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := startProxyBin(t, "proxy", proxyBin, "--allow-keys", list)
	be := backend(t, echo)
	began := time.Now()
	c := runProcess(t, "client", clientBin, "--proxy", "ws://"+addr, "--target", be.URL, "--key", filepath.Join(dir, "c.key"))
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("the refused client still runs 5s later:\n%s", c.stderr.String())
	}
	t.Logf("the refused client exited %v after it started", time.Since(began))
	if code := c.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	log := c.stderr.String()
	var causes []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "(403)") {
			causes = append(causes, line)
		}
	}
	if len(causes) != 1 || !strings.Contains(causes[0], "does not allow this key") || !strings.Contains(causes[0], "fix:") {
		t.Errorf("want one line naming the cause (403) and the fix, got %q in:\n%s", causes, log)
	}
	for _, bad := range []string{"retrying", "link lost", "registration refused: registration refused"} {
		if strings.Contains(log, bad) {
			t.Errorf("client log says %q:\n%s", bad, log)
		}
	}
}
