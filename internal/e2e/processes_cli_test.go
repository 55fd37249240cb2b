package e2e

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/internal/identity"
	"keyhole/internal/syncbuf"
)

// result is what one run of a binary that exits on its own left.
type result struct {
	stdout, stderr string
	code           int
}

func runExit(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, e := range env {
		if e != "" {
			cmd.Env = append(cmd.Environ(), e)
		}
	}
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// Both binaries: --help prints the usage on stdout and exits 0; --version
// prints one line and exits 0; a bad flag or variable prints one line
// naming it, the value and the form wanted (a hint to --help for a bad
// flag), no usage, and exits 2.
func TestProcessesCommandLine(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	for name, bin := range map[string]string{"proxy": proxyBin, "client": clientBin} {
		if r := runExit(t, bin, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "usage: "+name) || r.stderr != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", name, r.code, r.stdout, r.stderr)
		}
		if r := runExit(t, bin, nil, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "keyhole "+name+" ") || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("%s --version: exit %d, stdout %q; want 0 and one line", name, r.code, r.stdout)
		}
		if r := runExit(t, bin, nil, "--bogus"); r.code != 2 || r.stdout != "" ||
			r.stderr != "keyhole "+name+": unknown flag --bogus; run with --help for the flags\n" {
			t.Errorf("%s --bogus: exit %d, stderr %q, stdout %q; want 2 and one line with a hint", name, r.code, r.stderr, r.stdout)
		}
	}
	for _, tc := range []struct {
		bin  string
		env  string
		args []string
		want string
	}{
		{proxyBin, "KEYHOLE_MAX_BODY=abc", nil, `keyhole proxy: KEYHOLE_MAX_BODY="abc": want a whole number of bytes`},
		{proxyBin, "", []string{"--domain", "http://x"}, `keyhole proxy: --domain "http://x": a URL; want a DNS name such as tunnel.example.com, without scheme, port or path`},
		{clientBin, "KEYHOLE_PROXY=ftp://x", []string{"--target", "3000"}, `keyhole client: --proxy "ftp://x": want ws:// or wss:// (wss:// for a proxy behind TLS)`},
		{clientBin, "", []string{"--target", "ftp://x"}, `keyhole client: --target "ftp://x": want a port (3000), host:port (localhost:3000) or a URL (http://127.0.0.1:3000)`},
		{clientBin, "", []string{"--target", "3000", "--inspect", "4040"}, `keyhole client: --inspect "4040": want host:port (e.g. 127.0.0.1:4040) or off`},
	} {
		if r := runExit(t, tc.bin, []string{tc.env}, tc.args...); r.code != 2 || r.stderr != tc.want+"\n" || r.stdout != "" {
			t.Errorf("%s %v: exit %d, stderr %q, stdout %q; want 2 and %q alone", tc.env, tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}

// client --print-label prints the label of its key, creating the key
// when there is none, and exits without connecting; the next run prints
// the same label.
func TestProcessesPrintLabel(t *testing.T) {
	_, clientBin := buildBinaries(t)
	path := filepath.Join(t.TempDir(), "client.key")
	first := runExit(t, clientBin, nil, "--print-label", "--key", path, "--proxy", "ws://127.0.0.1:1")
	key, created, err := identity.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("the key file after --print-label: created %v, %v; want it written by the client", created, err)
	}
	want := identity.Label(key.Public().(ed25519.PublicKey)) + "\n"
	if first.code != 0 || first.stdout != want {
		t.Errorf("--print-label: exit %d, stdout %q; want 0 and %q", first.code, first.stdout, want)
	}
	if strings.Contains(first.stderr, "connect") {
		t.Errorf("--print-label tried to connect:\n%s", first.stderr)
	}
	if again := runExit(t, clientBin, nil, "--print-label", "--key", path); again.stdout != want {
		t.Errorf("--print-label again: got %q, want %q", again.stdout, want)
	}
}

// --target 3000 means http://127.0.0.1:3000, and --proxy host:port means
// ws://host:port: a client started so serves.
func TestProcessesShortTargetAndProxy(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	_, addr := startProxyBin(t, "proxy", proxyBin)
	be := backend(t, echo)
	_, bePort, _ := net.SplitHostPort(be.Listener.Addr().String())
	_, publicURL := startProcess(t, "client", clientBin, "--proxy", addr, "--target", bePort,
		"--key", filepath.Join(t.TempDir(), "client.key"))
	checkEcho(t, "a tunnel to --target <port>", dialVisitor(addr, 10*time.Second), publicURL)
}
