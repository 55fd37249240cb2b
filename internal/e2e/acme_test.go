package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/bus/redisbus"
	"keyhole/internal/certs/rediscache"
	"keyhole/internal/identity"
	"keyhole/internal/redistest"
)

const acmeDomain = "keyhole.localhost"

// acmeNode runs a proxy process in ACME mode on redisURL and returns it
// with its TLS address.
func acmeNode(t *testing.T, bin, node, redisURL, secret string, pb *pebble, extra ...string) string {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--domain", acmeDomain, "--node", node,
		"--redis", redisURL, "--cluster-secret", secret,
		"--acme", pb.directory, "--acme-ca", pb.tlsCA, "--acme-email", "ops@keyhole.test"}, extra...)
	_, line := startProcess(t, "proxy "+node, bin, args...)
	u, err := url.Parse(line)
	if err != nil || u.Scheme != "https" || u.Hostname() != acmeDomain || u.Port() == "" {
		t.Fatalf("proxy %s: first line %q, want https://%s:PORT", node, line, acmeDomain)
	}
	return net.JoinHostPort("127.0.0.1", u.Port())
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
	addrA := acmeNode(t, proxyBin, "a", srv.URL(), secret, pb)
	addrB := acmeNode(t, proxyBin, "b", srv.URL(), secret, pb, "--http-listen", plainB)

	dir := t.TempDir()
	roots := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(roots, pb.issuerPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, portA, _ := net.SplitHostPort(addrA)
	cl := runProcessEnv(t, "client", []string{"SSL_CERT_FILE=" + roots, "HTTPS_PROXY=" + startConnectProxy(t), "NO_PROXY=", "no_proxy="},
		clientBin, "--proxy", "wss://"+acmeDomain+":"+portA, "--target", backend(t, echoOrSocket).URL, "--key", filepath.Join(dir, "client.key"))
	publicURL := cl.firstLine(t, 90*time.Second)
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Hostname(), "."+acmeDomain) {
		t.Fatalf("client: first line %q, want https://<label>.%s:PORT", publicURL, acmeDomain)
	}
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
