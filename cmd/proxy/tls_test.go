package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/internal/certs/certstest"
)

// Flags of the proxy's TLS that do not make sense together are refused
// at start, each with a message naming the flags.
func TestTLSFlagsChecked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "c", "--tls-key", "k", "--acme", "https://ca.example/dir"}, "exclude each other"},
		{[]string{"--acme-email", "a@b.c"}, "need --acme"},
		{[]string{"--acme-dir", "/tmp/x"}, "need --acme"},
		{[]string{"--http-listen", ":80"}, "--http-listen needs --tls-cert or --acme"},
		{[]string{"--acme", "http://ca.example/dir", "--domain", "t.example.com"}, "want the https:// URL"},
		{[]string{"--acme", "https://ca.example/dir"}, "needs a public --domain"},
	} {
		_, err := parse(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.args, err, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "http"},
		{[]string{"--acme", "https://ca.example/dir", "--domain", "t.example.com"}, "https"},
		{[]string{"--tls-cert", "c", "--tls-key", "k"}, "https"},
		{[]string{"--tls-cert", "c", "--tls-key", "k", "--public-scheme", "http"}, "http"},
	} {
		o, err := parse(c.args, io.Discard)
		if err != nil || o.publicScheme != c.want {
			t.Errorf("%q: got scheme %v (err %v), want %s", c.args, o, err, c.want)
		}
	}
}

// With --http-redirect=false the plain listener serves the proxy itself
// rather than redirecting.
func TestHTTPListenServes(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	certstest.NewCA(t).Leaf(t, cert, key, "localhost", "*.localhost")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	plain := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
			"--http-listen", plain, "--http-redirect=false", "--drain-timeout", "1s"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	br := bufio.NewReader(pr)
	first, err := br.ReadString('\n')
	go io.Copy(io.Discard, br) // the rest, until Main returns
	if err != nil || !strings.HasPrefix(first, "https://localhost:") {
		t.Fatalf("first line: got %q, %v; want https://localhost:PORT", first, err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get("http://" + plain + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("plain http /healthz with --http-redirect=false: got %d %q, want 200 ok", resp.StatusCode, body)
	}
}
