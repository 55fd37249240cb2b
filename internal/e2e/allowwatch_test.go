package e2e

import (
	"crypto/ed25519"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/internal/identity"
)

// TestProcessesAllowKeysFileChange rewrites --allow-keys the way a mounted
// ConfigMap is updated, a symlink swapped to a new file, and sends no
// SIGHUP: within seconds the proxy binary closes the link of the key taken
// off the list, and the client binary logs why.
func TestProcessesAllowKeysFileChange(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "a.key")
	k, _, err := identity.LoadOrCreate(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	label := identity.Label(k.Public().(ed25519.PublicKey))
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	if err := os.WriteFile(v1, []byte(label+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, []byte("# nobody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "allowed")
	if err := os.Symlink(v1, list); err != nil {
		t.Fatal(err)
	}
	px, addr := startProxyBin(t, "proxy", proxyBin, "--allow-keys", list)
	be := backend(t, echo)
	hc := dialVisitor(addr, 10*time.Second)
	c, tunnelURL := startProcess(t, "client", clientBin, "--proxy", "ws://"+addr, "--target", be.URL, "--key", keyPath)
	checkEcho(t, "the allowed key's tunnel", hc, tunnelURL)

	tmp := filepath.Join(dir, "allowed.tmp")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, list); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	waitFor(t, "the client to log why its link closed", func() bool {
		return strings.Contains(c.stderr.String(), "taken off the allowed keys")
	})
	t.Logf("the client was told %v after the file changed", time.Since(changed).Round(time.Millisecond))
	if got := ask(hc, "GET", tunnelURL+"/", nil); got.code != http.StatusNotFound {
		t.Errorf("the removed key's hostname: got %d, want 404", got.code)
	}
	waitFor(t, "the proxy to log the reload", func() bool {
		return strings.Contains(px.stderr.String(), "allowed keys reloaded")
	})
}
