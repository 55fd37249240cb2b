package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/certs/certstest"
)

// tlsVisitor is a visitor over TLS whose connections all go to addr,
// trusting roots, offering protos by ALPN (nil: h2 and http/1.1).
func tlsVisitor(addr string, roots *x509.CertPool, protos ...string) *http.Client {
	hc := dialVisitor(addr, 10*time.Second)
	t := hc.Transport.(*http.Transport)
	t.TLSClientConfig = &tls.Config{RootCAs: roots, NextProtos: protos}
	t.ForceAttemptHTTP2 = protos == nil
	return hc
}

// served returns the serial of the certificate addr serves for host, or
// the handshake's error.
func served(addr, host string, roots *x509.CertPool) (*big.Int, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// wsOverTLS opens a WebSocket to url (https://…) through addr over TLS
// and HTTP/1.1, as gorilla and browsers upgrade, and checks an echo.
func wsOverTLS(t *testing.T, addr, rawURL string, roots *x509.CertPool) {
	t.Helper()
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:  &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
		HandshakeTimeout: 10 * time.Second,
	}
	ws, _, err := d.Dial(strings.Replace(rawURL, "https://", "wss://", 1)+"/socket", nil)
	if err != nil {
		t.Fatalf("WebSocket over TLS: %v", err)
	}
	defer ws.Close()
	if err := wsRoundTrip(ws); err != nil {
		t.Fatalf("WebSocket over TLS: %v", err)
	}
}

// TestProcessesTLSFiles runs the proxy binary with --tls-cert/--tls-key
// and the client binary with --proxy wss://… trusting the CA through
// SSL_CERT_FILE: visitors get HTTP/2 (or HTTP/1.1 if that is all they
// offer) and WebSockets over TLS; the certificate is replaced on disk and
// served with no restart; --http-listen redirects to https.
func TestProcessesTLSFiles(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := ca.Leaf(t, cert, key, "localhost", "*.localhost")
	plain := freeAddr(t)
	_, apex := startProcess(t, "proxy", proxyBin, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--http-listen", plain)
	u, err := url.Parse(apex)
	if err != nil || u.Scheme != "https" || u.Hostname() != "localhost" || u.Port() == "" {
		t.Fatalf("proxy: first line %q, want https://localhost:PORT", apex)
	}
	addr := net.JoinHostPort("127.0.0.1", u.Port())

	cl := runProcessEnv(t, "client", []string{"SSL_CERT_FILE=" + ca.WriteCA(t, dir)}, clientBin,
		"--proxy", "wss://localhost:"+u.Port(), "--target", backend(t, echoOrSocket).URL, "--key", filepath.Join(dir, "client.key"))
	publicURL := cl.firstLine(t, 10*time.Second)
	if !strings.HasPrefix(publicURL, "https://") || !strings.HasSuffix(publicURL, ".localhost:"+u.Port()) {
		t.Fatalf("client: first line %q, want https://<label>.localhost:%s", publicURL, u.Port())
	}
	h2 := tlsVisitor(addr, ca.Pool())
	checkEcho(t, "a visitor over TLS", h2, publicURL)
	resp, err := h2.Get(publicURL + "/proto")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Errorf("visitor offering h2: got %s (ALPN %q), want HTTP/2", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	if got := resp.Header.Get("X-Req-X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto toward the service: got %q, want https", got)
	}
	checkEcho(t, "a visitor offering only http/1.1", tlsVisitor(addr, ca.Pool(), "http/1.1"), publicURL)
	wsOverTLS(t, addr, publicURL, ca.Pool())

	second := ca.Leaf(t, cert, key, "localhost", "*.localhost")
	host := strings.TrimPrefix(strings.TrimSuffix(publicURL, ":"+u.Port()), "https://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := served(addr, host, ca.Pool())
		if err == nil && got.Cmp(second) == 0 {
			break
		}
		if err != nil || got.Cmp(first) != 0 || time.Now().After(deadline) {
			t.Fatalf("after the files changed: got serial %v (err %v), want %v within 10 s (first %v)", got, err, second, first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkEcho(t, "after the certificate changed", tlsVisitor(addr, ca.Pool()), publicURL)

	hc := dialVisitor(plain, 10*time.Second)
	resp, err = hc.Get("http://" + host + "/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := publicURL + "/a/b?c=d"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain http: got %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}
