package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"keyhole/bus/redisbus"
	"keyhole/internal/certs/rediscache"
	"keyhole/internal/identity"
	"keyhole/internal/redistest"
)

const acmeDomain = "keyhole.localhost"

// acmeNode runs a proxy process in ACME mode and returns it with its TLS
// address.
func acmeNode(t *testing.T, bin, node string, pb *pebble, extra ...string) (*process, string) {
	t.Helper()
	args := append([]string{"--domain", acmeDomain, "--node", node,
		"--acme", pb.directory, "--acme-ca", pb.tlsCA, "--acme-email", "ops@keyhole.test"}, extra...)
	if !slices.Contains(extra, "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	p, line := startProcess(t, "proxy "+node, bin, args...)
	u, err := url.Parse(line)
	if err != nil || u.Scheme != "https" || u.Hostname() != acmeDomain || u.Port() == "" {
		t.Fatalf("proxy %s: first line %q, want https://%s:PORT", node, line, acmeDomain)
	}
	return p, net.JoinHostPort("127.0.0.1", u.Port())
}

// acmeClient runs a client process that links to the node at addr by the
// apex's name, trusting pebble's issuing root, and returns its URL.
func acmeClient(t *testing.T, bin, addr string, pb *pebble, target string) string {
	t.Helper()
	dir := t.TempDir()
	roots := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(roots, pb.issuerPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	cl := runProcessEnv(t, "client", []string{"SSL_CERT_FILE=" + roots, "HTTPS_PROXY=" + startConnectProxy(t), "NO_PROXY=", "no_proxy="},
		bin, "--proxy", "wss://"+acmeDomain+":"+port, "--target", target, "--key", filepath.Join(dir, "client.key"))
	publicURL := cl.firstLine(t, 90*time.Second)
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Hostname(), "."+acmeDomain) {
		t.Fatalf("client: first line %q, want https://<label>.%s:PORT", publicURL, acmeDomain)
	}
	return publicURL
}

// TestProcessesACME runs two proxy processes in ACME mode on one
// redis-server against a real pebble. The client's link to the apex gets
// the apex a certificate; its label gets one on the first visitor; a
// label with no client gets none and no order is placed; the second node
// serves the same certificate from Redis without ordering again, and
// answers HTTP-01 challenges for an order the other node placed.
func TestProcessesACME(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	pb := startPebble(t)
	srv := redistest.Start(t)
	secret := "acme test secret " + rand.Text()
	plainB := freeAddr(t)
	cluster := []string{"--redis", srv.URL(), "--cluster-secret", secret}
	_, addrA := acmeNode(t, proxyBin, "a", pb, cluster...)
	_, addrB := acmeNode(t, proxyBin, "b", pb, append(cluster, "--http-listen", plainB)...)

	publicURL := acmeClient(t, clientBin, addrA, pb, backend(t, echoOrSocket).URL)
	u, _ := url.Parse(publicURL)
	host := u.Hostname()
	if n := pb.orders(); n != 1 {
		t.Errorf("orders at pebble after the client's link: got %d, want 1 (the apex)", n)
	}

	viaA := tlsVisitor(addrA, pb.issuer)
	viaA.Timeout = 90 * time.Second
	checkEcho(t, "a visitor through node a, first for this label", viaA, publicURL)
	serialA, err := served(addrA, host, pb.issuer)
	if err != nil {
		t.Fatalf("node a's certificate for %s, checked with pebble's root: %v", host, err)
	}
	if n := pb.orders(); n != 2 {
		t.Errorf("orders at pebble after the first visitor: got %d, want 2 (apex and label)", n)
	}
	resp, err := viaA.Get(publicURL + "/proto")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err != nil || resp.ProtoMajor != 2 {
		t.Errorf("visitor over ACME TLS: got %v, %v; want HTTP/2", resp, err)
	}
	wsOverTLS(t, addrA, publicURL, pb.issuer)

	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	nobody := identity.Label(pub) + "." + acmeDomain
	for _, addr := range []string{addrA, addrB} {
		if _, err := served(addr, nobody, pb.issuer); err == nil {
			t.Errorf("%s: a handshake for %s, a label with no client, succeeded", addr, nobody)
		}
	}
	if _, err := served(addrA, "elsewhere.example.test", pb.issuer); err == nil {
		t.Errorf("a handshake for a host outside the domain succeeded")
	}

	serialB, err := served(addrB, host, pb.issuer)
	if err != nil {
		t.Fatalf("node b's certificate for %s: %v", host, err)
	}
	if serialB.Cmp(serialA) != 0 {
		t.Errorf("node b serves serial %v, node a %v: want the one certificate from Redis", serialB, serialA)
	}
	checkEcho(t, "a visitor through node b, across Redis", tlsVisitor(addrB, pb.issuer), publicURL)
	if n := pb.orders(); n != 2 {
		t.Errorf("orders at pebble at the end: got %d, want 2: none for the label without a client, none from node b", n)
	}

	t.Logf("pebble took %d orders; both nodes serve serial %x for %s", pb.orders(), serialA, host)

	// An HTTP-01 token put in the cache by one node is answered by another.
	cache, err := rediscache.New(srv.NewClient(t), redisbus.DefaultPrefix, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Put(context.Background(), "tok3n+http-01", []byte("tok3n.thumbprint")); err != nil {
		t.Fatal(err)
	}
	plain := dialVisitor(plainB, 10*time.Second)
	got := ask(plain, "GET", "http://"+host+"/.well-known/acme-challenge/tok3n", nil)
	if got.err != nil || got.code != http.StatusOK || string(got.body) != "tok3n.thumbprint" {
		t.Errorf("HTTP-01 challenge on node b: got %d %q (err %v), want 200 with the token's key authorization", got.code, got.body, got.err)
	}
	got = ask(plain, "GET", "http://"+nobody+"/.well-known/acme-challenge/tok3n", nil)
	if got.err != nil || got.code != http.StatusForbidden {
		t.Errorf("HTTP-01 challenge for a label with no client: got %d (err %v), want 403", got.code, got.err)
	}
}

// TestProcessesACMEDirectory runs a single node in ACME mode with no
// Redis: its certificates are kept in --acme-dir, and the node started
// again on the same directory serves them without ordering again.
func TestProcessesACMEDirectory(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	pb := startPebble(t)
	store := t.TempDir()
	node, addr := acmeNode(t, proxyBin, "solo", pb, "--acme-dir", store)
	publicURL := acmeClient(t, clientBin, addr, pb, backend(t, echo).URL)
	u, _ := url.Parse(publicURL)
	checkEcho(t, "a visitor of the single node", tlsVisitor(addr, pb.issuer), publicURL)
	before, err := served(addr, u.Hostname(), pb.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if n := pb.orders(); n != 2 {
		t.Errorf("orders at pebble: got %d, want 2 (apex and label)", n)
	}

	node.kill()
	_, again := acmeNode(t, proxyBin, "solo", pb, "--acme-dir", store, "--listen", addr)
	var after *big.Int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// The label's client is still reconnecting: the certificate comes
		// from the directory, not from a new order.
		if after, err = served(again, u.Hostname(), pb.issuer); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || after.Cmp(before) != 0 {
		t.Errorf("after the restart: got serial %v (err %v), want %v from --acme-dir", after, err, before)
	}
	if n := pb.orders(); n != 2 {
		t.Errorf("orders at pebble after the restart: got %d, want still 2", n)
	}
}
