package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	startTimeout = 30 * time.Second // for a process's first line on stdout
	stopTimeout  = 5 * time.Second  // between SIGTERM and SIGKILL
)

// binaries are the programs under test.
type binaries struct{ proxy, client string }

// build compiles ./cmd/proxy and ./cmd/client into dir, unless prebuilt
// binaries were given.
func build(ctx context.Context, dir string, o *options, stderr io.Writer) (binaries, error) {
	bins := binaries{proxy: o.proxyBin, client: o.clientBin}
	var pkgs []string
	if bins.proxy == "" {
		bins.proxy, pkgs = filepath.Join(dir, "proxy"), append(pkgs, "./cmd/proxy")
	}
	if bins.client == "" {
		bins.client, pkgs = filepath.Join(dir, "client"), append(pkgs, "./cmd/client")
	}
	if len(pkgs) == 0 {
		return bins, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return bins, err
	}
	fmt.Fprintln(stderr, "bench: building", strings.Join(pkgs, " "))
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, stderr, stderr
	if err := cmd.Run(); err != nil {
		return bins, fmt.Errorf("go build: %w", err)
	}
	return bins, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the keyhole module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// limits are the proxy's default rate limits as its --help states them.
type limits struct{ tunnelRate, clientRate string }

var defaultRE = regexp.MustCompile(`(?m)^\s+--([a-z-]+) .*\n.*\(default "([^"]*)"\)`)

// proxyDefaults reads the default limits from the proxy's usage text.
func proxyDefaults(ctx context.Context, proxy string) limits {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, proxy, "--help")
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &out, childEnv()
	cmd.Run() // exits 2 after printing its usage
	l := limits{tunnelRate: "?", clientRate: "?"}
	for _, m := range defaultRE.FindAllStringSubmatch(out.String(), -1) {
		switch m[1] {
		case "tunnel-rate":
			l.tunnelRate = m[2]
		case "client-rate":
			l.clientRate = m[2]
		}
	}
	return l
}

// childEnv is the environment without KEYHOLE_* variables, so that only
// the flags the benchmark passes configure its processes.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYHOLE_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a started program whose stdout is drained and whose stderr goes
// to a log file.
type proc struct {
	name string
	log  string // path of its stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done
}

// procs stops every process it started, last started first.
type procs struct {
	mu   sync.Mutex // protects list
	list []*proc
}

// start runs bin and returns it with the first line it prints on stdout.
func (ps *procs) start(ctx context.Context, name, dir, bin string, args ...string) (*proc, string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	p, err := ps.spawn(name, dir, bin, w, args...)
	w.Close()
	if err != nil {
		r.Close()
		return nil, "", err
	}
	line, err := firstLine(ctx, p, r)
	if err != nil {
		err = fmt.Errorf("%s: %w%s", name, err, tail(p.log))
		ps.stop(p) // it failed already; what stop says adds nothing
		return nil, "", err
	}
	return p, line, nil
}

// spawn runs bin with its stderr, and its stdout unless one is given, in
// a log file named after it.
func (ps *procs) spawn(name, dir, bin string, stdout *os.File, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if stdout == nil {
		stdout = logf
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = stdout, logf, childEnv()
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// firstLine reads the first line of r, then drains r in the background.
func firstLine(ctx context.Context, p *proc, r *os.File) (string, error) {
	lines := make(chan string, 1)
	go func() {
		defer r.Close()
		br := bufio.NewReader(r)
		line, err := br.ReadString('\n')
		if err == nil {
			lines <- strings.TrimSpace(line)
		}
		io.Copy(io.Discard, br)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case line := <-lines:
		return line, nil
	case <-p.done:
		return "", fmt.Errorf("exited before printing its URL: %v", p.err)
	case <-timer.C:
		return "", fmt.Errorf("no URL on stdout within %v", startTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + filepath.Base(path) + " ---\n" + strings.TrimRight(string(b), "\n")
}

// stop sends p SIGTERM, then SIGKILL if it has not exited in time, and
// waits for it. It reports a process that had already exited on its own,
// one that exited badly, and one that had to be killed.
func (ps *procs) stop(p *proc) error {
	ps.forget(p)
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited on its own: %v%s", p.name, p.err, tail(p.log))
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p.name, p.err)
		}
		return nil
	case <-timer.C:
	}
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, stopTimeout)
}

// forget removes p from the processes stopAll stops.
func (ps *procs) forget(p *proc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.list = slices.DeleteFunc(ps.list, func(q *proc) bool { return q == p })
}

// stopAll stops every process, last started first.
func (ps *procs) stopAll(stderr io.Writer) {
	ps.mu.Lock()
	list := slices.Clone(ps.list)
	ps.mu.Unlock()
	for _, p := range slices.Backward(list) {
		if err := ps.stop(p); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}
}
