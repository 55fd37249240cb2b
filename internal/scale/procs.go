package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pprofFile is added to cmd/proxy through a build overlay: a pprof
// endpoint on the address in SCALE_PPROF_ADDR.
const pprofFile = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if a := os.Getenv("SCALE_PPROF_ADDR"); a != "" {
		go http.ListenAndServe(a, nil)
	}
}
`

// buildProxy builds cmd/proxy with pprofFile into dir.
func buildProxy(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	src := filepath.Join(dir, "scale_pprof.go")
	if err := os.WriteFile(src, []byte(pprofFile), 0o644); err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	target := filepath.Join(root, "cmd", "proxy", "zz_scale_pprof.go")
	if err := os.WriteFile(overlay, []byte(fmt.Sprintf(`{"Replace":{%q:%q}}`, target, src)), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "proxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-overlay", overlay, "-o", bin, "./cmd/proxy")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
}

// proc is a child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	addr  string // host:port it serves on, from its first line
	pprof string // host:port of its pprof endpoint
	done  chan struct{}
}

type procs struct {
	dir  string
	mu   sync.Mutex // protects list
	list []*proc
}

// proxyArgs turn the limits off, registration limits included.
var proxyArgs = []string{"--listen", "127.0.0.1:0", "--tunnel-rate", "0", "--client-rate", "0",
	"--register-rate", "0", "--register-global-rate", "0", "--register-pending", "100000", "--drain-timeout", "1s"}

// startProxy runs the proxy binary and waits for the URL it prints.
func (ps *procs) startProxy(ctx context.Context, name, bin string, extra ...string) (*proc, error) {
	pp, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(ps.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p := &proc{name: name, pprof: pp, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append(append([]string{}, proxyArgs...), extra...)...)
	p.cmd.Env = append(os.Environ(), "SCALE_PPROF_ADDR="+pp)
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
	}()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-lines:
		u, err := url.Parse(line)
		if err != nil || u.Port() == "" {
			return nil, fmt.Errorf("%s printed %q, want its URL", name, line)
		}
		p.addr = "127.0.0.1:" + u.Port()
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s printed nothing within 30s", name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p, nil
}

// kill sends SIGKILL and waits for the process.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.list {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				p.kill()
			}
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// rss is a process's resident set size in KiB.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no VmRSS")
}

// goroutines reads the process's goroutine count from its pprof endpoint.
func (p *proc) goroutines() (int, error) {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	_, n, ok := strings.Cut(strings.TrimSpace(line), "total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.Atoi(n)
}

// profile saves one of the process's pprof profiles into dir.
func (p *proc) profile(dir, kind string) error {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/" + kind)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(dir, p.name+"."+kind+".pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// memStats reads runtime.MemStats fields (bytes) from the process's heap
// profile in text form.
func (p *proc) memStats(fields ...string) (map[string]int64, error) {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/heap?debug=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, f := range fields {
		want[f] = true
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if ok && want[name] {
			n, err := strconv.ParseInt(strings.Fields(val)[0], 10, 64)
			if err == nil {
				m[name] = n
			}
		}
	}
	return m, sc.Err()
}

// gc makes the process collect garbage, through its heap profile.
func (p *proc) gc() {
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/heap?gc=1")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
