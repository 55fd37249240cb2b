package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Let's Encrypt's test ACME server, built from its Go module (through the
// module proxy like any dependency) and run on loopback. Challenges are
// taken as passed (PEBBLE_VA_ALWAYS_VALID): nothing here is reachable by
// name, and the tests are about what the proxy orders and serves.
const pebbleModule = "github.com/letsencrypt/pebble/v2"
const pebbleVersion = "v2.10.3"

var pebbleBuild struct {
	once     sync.Once
	bin, src string // the binary; the module's source, for its test certificates
	err      error
}

func buildPebble(t *testing.T) (bin, src string) {
	t.Helper()
	pebbleBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "keyhole-e2e-pebble-")
		if err != nil {
			pebbleBuild.err = err
			return
		}
		cmd := exec.CommandContext(ctx, "go", "install", pebbleModule+"/cmd/pebble@"+pebbleVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			pebbleBuild.err = fmt.Errorf("go install pebble: %v\n%s", err, out)
			return
		}
		out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", pebbleModule+"@"+pebbleVersion).Output()
		if err != nil {
			pebbleBuild.err = fmt.Errorf("go mod download pebble: %w", err)
			return
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal(out, &mod); err != nil {
			pebbleBuild.err = err
			return
		}
		pebbleBuild.bin, pebbleBuild.src = filepath.Join(dir, "pebble"), mod.Dir
	})
	if pebbleBuild.err != nil {
		t.Fatal(pebbleBuild.err)
	}
	return pebbleBuild.bin, pebbleBuild.src
}

// pebble is a running pebble.
type pebble struct {
	proc      *process
	directory string         // the ACME directory URL
	tlsCA     string         // file of the root of pebble's own HTTPS (for --acme-ca)
	issuer    *x509.CertPool // the root pebble issues under, from its management interface
	issuerPEM []byte
}

func startPebble(t *testing.T) *pebble {
	t.Helper()
	bin, src := buildPebble(t)
	listen, mgmt := freeAddr(t), freeAddr(t)
	_, httpPort, _ := net.SplitHostPort(freeAddr(t))
	_, tlsPort, _ := net.SplitHostPort(freeAddr(t))
	conf := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q, "httpPort": %s, "tlsPort": %s,
		"ocspResponderURL": "", "externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa"}}`,
		listen, mgmt, filepath.Join(src, "test/certs/localhost/cert.pem"), filepath.Join(src, "test/certs/localhost/key.pem"), httpPort, tlsPort)
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pebble{
		directory: "https://" + listen + "/dir",
		tlsCA:     filepath.Join(src, "test/certs/pebble.minica.pem"),
	}
	p.proc = runProcessEnv(t, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_WFE_NONCEREJECT=0"},
		bin, "-config", confFile)
	pem, err := os.ReadFile(p.tlsCA)
	if err != nil {
		t.Fatal(err)
	}
	own := x509.NewCertPool()
	own.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: own}}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := hc.Get(p.directory); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not serving its directory within 20 s:\n%s", p.proc.stdout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := hc.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if p.issuerPEM, err = io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble's issuing root: got %d, %v", resp.StatusCode, err)
	}
	p.issuer = x509.NewCertPool()
	if !p.issuer.AppendCertsFromPEM(p.issuerPEM) {
		t.Fatalf("pebble's issuing root is no PEM certificate: %q", p.issuerPEM)
	}
	return p
}

// orders is how many orders pebble has taken.
func (p *pebble) orders() int { return strings.Count(p.proc.stdout.String(), "Added order") }

// String is all the process has printed on stdout.
func (f *firstLine) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

// connectProxy is an HTTP CONNECT proxy that sends every tunnel to
// 127.0.0.1 on the port asked for: it lets a client process reach the
// proxy by a name nothing resolves (HTTPS_PROXY), certificate checks
// and all.
type connectProxy struct {
	wg    sync.WaitGroup // the server and every pipe
	mu    sync.Mutex     // protects conns
	conns []net.Conn     // every connection piped, closed at the end
}

func startConnectProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &connectProxy{}
	hs := &http.Server{Handler: http.HandlerFunc(cp.serve)}
	cp.wg.Go(func() { hs.Serve(ln) })
	t.Cleanup(func() {
		hs.Close()
		cp.mu.Lock()
		for _, c := range cp.conns {
			c.Close()
		}
		cp.mu.Unlock()
		cp.wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func (cp *connectProxy) serve(w http.ResponseWriter, r *http.Request) {
	_, port, err := net.SplitHostPort(r.Host)
	if r.Method != http.MethodConnect || err != nil {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	out, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	in, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		out.Close()
		return
	}
	cp.mu.Lock()
	cp.conns = append(cp.conns, in, out)
	cp.mu.Unlock()
	io.WriteString(in, "HTTP/1.1 200 Connection Established\r\n\r\n")
	cp.wg.Go(func() { io.Copy(out, in); out.Close(); in.Close() })
	cp.wg.Go(func() { io.Copy(in, out); out.Close(); in.Close() })
}
