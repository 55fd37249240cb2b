package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keyhole/internal/identity"
	"keyhole/internal/redistest"
	"keyhole/internal/syncbuf"
	"keyhole/registry/redisreg"
)

// The real binaries, as an operator runs them: two proxy processes on one
// redis-server, a load balancer in front of them, a client process behind
// it. Node a's process dies with SIGKILL, with no chance to clean up.

// built holds the binaries, built once for every test of the package.
var built struct {
	once          sync.Once
	dir           string
	proxy, client string
	err           error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildBinaries builds cmd/proxy and cmd/client with the race detector,
// once, and returns their paths.
func buildBinaries(t *testing.T) (proxyBin, clientBin string) {
	t.Helper()
	built.once.Do(func() {
		began := time.Now()
		if built.dir, built.err = os.MkdirTemp("", "keyhole-e2e-bin-"); built.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", built.dir+string(filepath.Separator), "./cmd/proxy", "./cmd/client")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.proxy, built.client = filepath.Join(built.dir, "proxy"), filepath.Join(built.dir, "client")
		t.Logf("built the binaries in %v", time.Since(began))
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.proxy, built.client
}

// process is a binary the test runs, killed when the test ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *firstLine
	stderr *syncbuf.Buffer
	exited chan struct{} // closed once the process has been waited for
}

// startProcess runs bin and waits up to 10 s for the first line on its
// stdout, which both commands print once they are ready.
func startProcess(t *testing.T, name, bin string, args ...string) (*process, string) {
	t.Helper()
	p := runProcess(t, name, bin, args...)
	return p, p.firstLine(t, 10*time.Second)
}

// runProcess runs bin until the test ends.
func runProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	return runProcessEnv(t, name, nil, bin, args...)
}

// runProcessEnv runs bin with env added to the test's environment.
func runProcessEnv(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{
		name:   name,
		cmd:    exec.Command(bin, args...),
		stdout: &firstLine{line: make(chan string, 1)},
		stderr: &syncbuf.Buffer{},
		exited: make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // owned: cleanup waits for exited
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: data race:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// firstLine waits for the first line the process prints on stdout.
func (p *process) firstLine(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case line := <-p.stdout.line:
		return strings.TrimSpace(line)
	case <-p.exited:
		t.Fatalf("%s exited before printing its URL:\n%s", p.name, p.stderr.String())
	case <-time.After(timeout):
		t.Fatalf("%s printed no URL within %v:\n%s", p.name, timeout, p.stderr.String())
	}
	return ""
}

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// firstLine collects a process's stdout and hands its first line over.
type firstLine struct {
	mu   sync.Mutex // protects buf and sent
	buf  bytes.Buffer
	sent bool
	line chan string
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Write(p)
	if i := bytes.IndexByte(f.buf.Bytes(), '\n'); i >= 0 && !f.sent {
		f.sent = true
		f.line <- string(f.buf.Bytes()[:i])
	}
	return len(p), nil
}

// lines returns the lines printed so far.
func (f *firstLine) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	whole := f.buf.String()
	if i := strings.LastIndexByte(whole, '\n'); i >= 0 {
		return strings.Split(whole[:i], "\n")
	}
	return nil
}

// startProxyProcess runs a proxy node on Redis and returns it with the
// loopback address it listens on.
func startProxyProcess(t *testing.T, bin, node, redisURL, secret string) (*process, string) {
	t.Helper()
	return startProxyBin(t, "proxy "+node, bin,
		"--redis", redisURL, "--cluster-secret", secret, "--node", node, "--domain", "localhost")
}

// startProxyBin runs the proxy binary with args on a free loopback port
// (--listen 127.0.0.1:0) and returns it with the address it listens on,
// read from the URL it prints first.
func startProxyBin(t *testing.T, name, bin string, args ...string) (*process, string) {
	t.Helper()
	p, line := startProcess(t, name, bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	u, err := url.Parse(line)
	if err != nil || u.Port() == "" {
		t.Fatalf("%s: first line %q is not its URL: %v", name, line, err)
	}
	return p, net.JoinHostPort("127.0.0.1", u.Port())
}

// failoverLB is a TCP load balancer: each connection goes to primary, or
// to backup when primary refuses it.
type failoverLB struct {
	ln              net.Listener
	primary, backup string

	mu    sync.Mutex // protects conns and picks
	conns map[net.Conn]struct{}
	picks map[string]int // connections sent to each address
	wg    sync.WaitGroup // the accept loop and every pipe
}

func startFailoverLB(t *testing.T, primary, backup string) *failoverLB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &failoverLB{ln: ln, primary: primary, backup: backup, conns: map[net.Conn]struct{}{}, picks: map[string]int{}}
	lb.wg.Go(lb.accept)
	t.Cleanup(func() {
		ln.Close()
		lb.mu.Lock()
		for c := range lb.conns {
			c.Close()
		}
		lb.mu.Unlock()
		lb.wg.Wait()
	})
	return lb
}

func (lb *failoverLB) addr() string { return lb.ln.Addr().String() }

func (lb *failoverLB) accept() {
	for {
		in, err := lb.ln.Accept()
		if err != nil {
			return
		}
		to := lb.primary
		out, err := net.DialTimeout("tcp", to, time.Second)
		if err != nil {
			to = lb.backup
			out, err = net.DialTimeout("tcp", to, time.Second)
		}
		if err != nil {
			in.Close()
			continue
		}
		lb.mu.Lock()
		lb.conns[in], lb.conns[out] = struct{}{}, struct{}{}
		lb.picks[to]++
		lb.mu.Unlock()
		lb.wg.Go(func() { lb.pipe(out, in) })
		lb.wg.Go(func() { lb.pipe(in, out) })
	}
}

// pipe copies src to dst; when either side ends, both close, so the other
// direction ends too.
func (lb *failoverLB) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	lb.mu.Lock()
	delete(lb.conns, dst)
	delete(lb.conns, src)
	lb.mu.Unlock()
}

func (lb *failoverLB) picked(addr string) int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.picks[addr]
}

// deadNodeBound is how soon a killed node's routes must be gone from
// lookups.
const deadNodeBound = 10 * time.Second

// TestProcessesNodeKilled runs two proxy processes on one redis-server and
// a client process that reaches them through a load balancer, lands on
// node a, and serves visitors of node b across Redis. Node a dies with
// SIGKILL: node b answers its requests fast, the client comes back through
// the load balancer on node b, and node a's route is gone
// from lookups once its lease lapses (well within deadNodeBound), nobody
// having withdrawn it.
func TestProcessesNodeKilled(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	srv := redistest.Start(t)
	secret := "process test secret " + rand.Text()
	a, addrA := startProxyProcess(t, proxyBin, "a", srv.URL(), secret)
	_, addrB := startProxyProcess(t, proxyBin, "b", srv.URL(), secret)
	lb := startFailoverLB(t, addrA, addrB)
	be := backend(t, echo)
	_, publicURL := startProcess(t, "client", clientBin,
		"--proxy", "ws://"+lb.addr(), "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	u, err := url.Parse(publicURL)
	if err != nil || !strings.HasSuffix(u.Hostname(), ".localhost") {
		t.Fatalf("client: first line %q is not a public URL: %v", publicURL, err)
	}
	label := strings.TrimSuffix(u.Hostname(), ".localhost")
	if lb.picked(addrA) != 1 || lb.picked(addrB) != 0 {
		t.Fatalf("load balancer: got %d connections to a and %d to b, want the client on a", lb.picked(addrA), lb.picked(addrB))
	}
	viaA, viaB := dialVisitor(addrA, 10*time.Second), dialVisitor(addrB, 10*time.Second)
	checkEcho(t, "through node a, which holds the client", viaA, publicURL)
	checkEcho(t, "through node b, across Redis", viaB, publicURL)

	reg, err := redisreg.New(srv.NewClient(t), redisreg.Options{Prefix: redisreg.DefaultPrefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if nodes, err := reg.Lookup(context.Background(), label); err != nil || !slices.Equal(nodes, []string{"a"}) {
		t.Fatalf("route before the kill: got %v, %v; want [a]", nodes, err)
	}

	rc := srv.NewClient(t)
	a.kill()
	killed := time.Now()
	leaseTTL, err := rc.PTTL(context.Background(), redisreg.DefaultPrefix+":lease:{a}").Result()
	if err != nil || leaseTTL <= 0 {
		t.Fatalf("node a's lease right after the kill: got TTL %v, %v; want a live lease", leaseTTL, err)
	}
	expiresIn := leaseTTL
	first := ask(viaB, "GET", publicURL+"/first", nil)
	// Node b tries the dead node's route for up to 1.5 s (it may be
	// subscribing again); if the client is back on b by then, the
	// request is served.
	if first.err != nil || !slices.Contains([]int{200, 404, 502, 503}, first.code) || first.took >= crossNodeFailFast {
		t.Errorf("first request through b after the kill: got %d (err %v) after %v, want 200, 404, 502 or 503 in under %v",
			first.code, first.err, first.took, crossNodeFailFast)
	}
	t.Logf("first request through b after the kill: %d after %v", first.code, first.took)

	deadline := killed.Add(15 * time.Second)
	var failures []int
	for {
		got := ask(viaB, "GET", publicURL+"/back", nil)
		if got.err == nil && got.code == http.StatusOK {
			break
		}
		failures = append(failures, got.code)
		if got.err != nil || !slices.Contains([]int{404, 502, 503}, got.code) || got.took >= crossNodeFailFast {
			t.Errorf("request through b while the client moves: got %d (err %v) after %v, want 404, 502 or 503 in under %v",
				got.code, got.err, got.took, crossNodeFailFast)
		}
		if time.Now().After(deadline) {
			t.Fatalf("client not serving through b within 15s of the kill; answers meanwhile %v", failures)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("client serving through node b %v after node a's SIGKILL (answers meanwhile: %v)", time.Since(killed), failures)
	checkEcho(t, "through node b after the failover", viaB, publicURL)
	if n := lb.picked(addrB); n < 1 {
		t.Errorf("load balancer: got %d connections to b, want the client's new link", n)
	}

	var nodes []string
	for {
		nodes, err = reg.Lookup(context.Background(), label)
		if err == nil && !slices.Contains(nodes, "a") {
			break
		}
		if time.Since(killed) > deadNodeBound {
			t.Fatalf("node a's route still live %v after its SIGKILL: got %v, %v", time.Since(killed), nodes, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	gone := time.Since(killed)
	t.Logf("node a's route gone from lookups %v after its SIGKILL (its lease lapsed %v after the kill; TTL %v); route now %v",
		gone, expiresIn, redisreg.DefaultTTL, nodes)
	if expiresIn > redisreg.DefaultTTL || gone > redisreg.DefaultTTL+time.Second {
		t.Errorf("node a's route lasted %v after its SIGKILL (lease lapsed %v after it), want within the lease TTL of %v and a second", gone, expiresIn, redisreg.DefaultTTL)
	}
	if !slices.Equal(nodes, []string{"b"}) {
		t.Errorf("route after the failover: got %v, want [b]", nodes)
	}
	checkEcho(t, "through node b at the end", viaB, publicURL)
}

// TestProcessesAllowKeys runs the proxy binary with --allow-keys: a key on
// the list serves, another is refused and told why (and, with
// --retry-refused, keeps trying); after the file
// changes and the proxy gets SIGHUP, the key taken off the list loses its
// hostname and the key put on it registers.
func TestProcessesAllowKeys(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	labels := map[string]string{}
	for _, path := range []string{keyA, keyB} {
		k, _, err := identity.LoadOrCreate(path)
		if err != nil {
			t.Fatal(err)
		}
		labels[path] = identity.Label(k.Public().(ed25519.PublicKey))
	}
	list := filepath.Join(dir, "allowed")
	// A hostname, as an operator copies it from a client's URL.
	if err := os.WriteFile(list, []byte("# who may register\n"+labels[keyA]+".localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	px, addr := startProxyBin(t, "proxy", proxyBin, "--allow-keys", list)
	be := backend(t, echo)
	hc := dialVisitor(addr, 10*time.Second)

	_, urlA := startProcess(t, "client a", clientBin, "--proxy", "ws://"+addr, "--target", be.URL, "--key", keyA)
	checkEcho(t, "the allowed key's tunnel", hc, urlA)

	// --retry-refused: without it a refused client exits (see
	// TestProcessesRefusedKeyExits); with it it waits to be listed.
	b := runProcess(t, "client b", clientBin, "--proxy", "ws://"+addr, "--target", be.URL, "--key", keyB, "--retry-refused")
	waitFor(t, "client b to be told its key is not allowed", func() bool {
		return strings.Contains(b.stderr.String(), "this key is not allowed on this proxy")
	})
	_, port, _ := net.SplitHostPort(addr)
	urlB := "http://" + labels[keyB] + ".localhost:" + port
	if got := ask(hc, "GET", urlB+"/", nil); got.code != http.StatusNotFound {
		t.Errorf("the refused key's hostname: got %d, want 404", got.code)
	}

	if err := os.WriteFile(list, []byte(labels[keyB]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := px.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := b.firstLine(t, 10*time.Second); got != urlB {
		t.Errorf("client b printed %q after the reload, want %q", got, urlB)
	}
	checkEcho(t, "the newly allowed key's tunnel", hc, urlB)
	waitFor(t, "the key taken off the list to lose its hostname", func() bool {
		return ask(hc, "GET", urlA+"/", nil).code == http.StatusNotFound
	})
	if !strings.Contains(px.stderr.String(), "allowed keys reloaded") {
		t.Errorf("proxy did not log the reload:\n%s", px.stderr.String())
	}
}

// TestProcessesMetricsListen runs the proxy binary with --metrics-listen:
// health and metrics answer there, and metrics no longer on the public
// apex host.
func TestProcessesMetricsListen(t *testing.T) {
	proxyBin, _ := buildBinaries(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := ln.Addr().String()
	ln.Close()
	_, addr := startProxyBin(t, "proxy", proxyBin, "--metrics-listen", opsAddr)
	if code, body := get(t, "http://"+opsAddr+"/_keyhole/metrics", ""); code != 200 || !strings.Contains(body, "keyhole_proxy_links_active 0") {
		t.Errorf("metrics on --metrics-listen: got %d %q", code, body)
	}
	if code, _ := get(t, "http://"+opsAddr+"/healthz", ""); code != 200 {
		t.Errorf("health on --metrics-listen: got %d", code)
	}
	if code, _ := get(t, "http://"+addr+"/_keyhole/metrics", "localhost"); code != http.StatusNotFound {
		t.Errorf("metrics on the apex host with --metrics-listen: got %d, want 404", code)
	}

	// An address it cannot listen on stops it with the flag's name.
	p := runProcess(t, "proxy", proxyBin, "--listen", "127.0.0.1:0", "--metrics-listen", opsAddr)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a proxy whose --metrics-listen address is taken kept running")
	}
	if !strings.Contains(p.stderr.String(), "--metrics-listen") {
		t.Errorf("proxy stderr does not name the flag:\n%s", p.stderr.String())
	}
}

// TestProcessesProxyProtocol runs the proxy binary behind a layer-4
// balancer that speaks the PROXY protocol: the address in a trusted peer's
// header is the visitor's, in X-Forwarded-For; a trusted peer without a
// header, and another peer with one, are refused.
func TestProcessesProxyProtocol(t *testing.T) {
	proxyBin, _ := buildBinaries(t)
	if out := runOnce(proxyBin, "--listen", "127.0.0.1:0", "--proxy-protocol"); !strings.Contains(out, "--proxy-protocol needs --trusted-proxies") {
		t.Errorf("--proxy-protocol alone: got %q, want it refused", out)
	}
	_, addr := startProxyBin(t, "proxy", proxyBin,
		"--proxy-protocol", "--trusted-proxies", "127.0.0.1/32")
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	})
	// The client's link comes through the balancer too, so it sends a
	// header; the client itself knows nothing of it.
	lbAddr := startPROXYRelay(t, addr, "198.51.100.20")
	c := startClientAt(t, "ws://"+lbAddr, be.URL, newKey(t))
	host := hostOf(c.url)

	raw := func(from, preface string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "%sGET / HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n", preface, host)
		out, _ := io.ReadAll(conn)
		return string(out)
	}
	v1 := "PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n"
	if got := raw("127.0.0.1", v1); !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "\r\n\r\n203.0.113.7") {
		t.Errorf("trusted balancer with a v1 header: got %q, want 200 with X-Forwarded-For 203.0.113.7", got)
	}
	if got := raw("127.0.0.1", ""); strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("trusted balancer without a header: got %q, want it refused", got)
	}
	if got := raw("127.0.0.2", v1); strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("untrusted peer with a header: got %q, want it refused", got)
	}
	if got := raw("127.0.0.2", ""); !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "\r\n\r\n127.0.0.2") {
		t.Errorf("untrusted peer without a header: got %q, want 200 with its own address", got)
	}
}

// runOnce runs bin, which should exit at once, and returns what it printed.
func runOnce(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out)
}

// startPROXYRelay starts a layer-4 balancer to addr that opens every
// connection with a PROXY v1 header naming visitor as its source.
func startPROXYRelay(t *testing.T, addr, visitor string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			fmt.Fprintf(out, "PROXY TCP4 %s 127.0.0.1 40000 443\r\n", visitor)
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	return ln.Addr().String()
}

// TestProcessesRollingDeploy stops a proxy process the way a supervisor
// does in a rolling deploy (SIGTERM) while visitors keep coming in on both
// nodes: its client moves to the other node through the balancer, no
// visitor gets an error, and the stopped node exits as soon as its client
// has left, well before its drain timeout.
func TestProcessesRollingDeploy(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	srv := redistest.Start(t)
	secret := "process test secret " + rand.Text()
	a, addrA := startProxyProcess(t, proxyBin, "a", srv.URL(), secret)
	_, addrB := startProxyProcess(t, proxyBin, "b", srv.URL(), secret)
	lb := startRelay(t, addrA, addrB) // round robin: the client's first link lands on a
	be := backend(t, echo)
	_, publicURL := startProcess(t, "client", clientBin,
		"--proxy", "ws://"+lb.addr(), "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	viaA, viaB := dialVisitor(addrA, 10*time.Second), dialVisitor(addrB, 10*time.Second)
	checkEcho(t, "through node a, which holds the client", viaA, publicURL)

	var mu sync.Mutex
	var served int
	var failed []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for name, hc := range map[string]*http.Client{"a": viaA, "b": viaB} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := ask(hc, "GET", publicURL+"/deploy", nil)
				mu.Lock()
				if got.err != nil || got.code != http.StatusOK {
					failed = append(failed, fmt.Sprintf("via %s: %d %v", name, got.code, got.err))
				} else {
					served++
				}
				mu.Unlock()
				if name == "a" && got.err != nil {
					return // node a has exited
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	term := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("node a still running 20s after SIGTERM")
	}
	took := time.Since(term)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Node a's own visitors may see its listener close as it exits; node
	// b's must see nothing at all.
	for _, f := range failed {
		if strings.HasPrefix(f, "via b") {
			t.Errorf("a visitor of node b failed during the deploy: %s", f)
		}
	}
	if took > 10*time.Second {
		t.Errorf("node a took %v to exit after SIGTERM, want it gone once its client left (drain timeout 30s)", took)
	}
	if !strings.Contains(a.stderr.String(), "client is leaving this link") {
		t.Errorf("node a did not see its client leave:\n%s", a.stderr.String())
	}
	checkEcho(t, "through node b after the deploy", viaB, publicURL)
	t.Logf("node a exited %v after SIGTERM; %d requests served meanwhile, %d failed on node a as it exited", took, served, len(failed))
}

// TestProcessesRedisPrefix runs two clusters on one redis-server, told
// apart by --redis-prefix (even with the same node names and secret): a
// tunnel is served by the nodes of its own cluster only.
func TestProcessesRedisPrefix(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	srv := redistest.Start(t)
	secret := "process test secret " + rand.Text()
	start := func(prefix, node string) string {
		_, addr := startProxyBin(t, "proxy "+prefix+"/"+node, proxyBin,
			"--redis", srv.URL(), "--cluster-secret", secret, "--node", node, "--redis-prefix", prefix)
		return addr
	}
	oneA, oneB, twoA := start("one", "a"), start("one", "b"), start("two", "a")
	be := backend(t, echo)
	_, publicURL := startProcess(t, "client", clientBin,
		"--proxy", "ws://"+oneA, "--target", be.URL, "--key", filepath.Join(t.TempDir(), "client.key"))
	checkEcho(t, "through the other node of its cluster", dialVisitor(oneB, 10*time.Second), publicURL)
	if got := ask(dialVisitor(twoA, 10*time.Second), "GET", publicURL+"/", nil); got.code != http.StatusNotFound {
		t.Errorf("through a node of the other cluster: got %d (%v), want 404", got.code, got.err)
	}
	u, _ := url.Parse(publicURL)
	label, _, _ := strings.Cut(u.Hostname(), ".")
	rc := srv.NewClient(t)
	for key, want := range map[string]int64{"one:route:" + label: 1, "two:route:" + label: 0, "keyhole:route:" + label: 0} {
		if n, err := rc.Exists(context.Background(), key).Result(); err != nil || n != want {
			t.Errorf("Redis key %s: exists %d (%v), want %d", key, n, err, want)
		}
	}
	if out := runOnce(proxyBin, "--redis-prefix", "x"); !strings.Contains(out, "--redis-prefix needs --redis") {
		t.Errorf("--redis-prefix alone: got %q, want it refused", out)
	}
}
