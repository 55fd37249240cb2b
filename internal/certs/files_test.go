package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"keyhole/internal/certs"
	"keyhole/internal/certs/certstest"
)

func servedSerial(t *testing.T, f *certs.Files) *big.Int {
	t.Helper()
	c, err := f.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber
}

// waitServed waits up to 5 s for f to serve serial.
func waitServed(t *testing.T, f *certs.Files, serial *big.Int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, f).Cmp(serial) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: got serial %v, want %v", what, servedSerial(t, f), serial)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The files are reloaded when they change, with no restart; a pair that
// does not load leaves the previous certificate in service.
func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := certstest.NewCA(t)
	first := ca.Leaf(t, cert, key, "*.example.test", "example.test")
	f, err := certs.NewFiles(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, f); got.Cmp(first) != 0 {
		t.Fatalf("first: got serial %v, want %v", got, first)
	}

	second := ca.Leaf(t, cert, key, "*.example.test", "example.test")
	waitServed(t, f, second, "after the files changed")

	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := servedSerial(t, f); got.Cmp(second) != 0 {
		t.Fatalf("after a broken key: got serial %v, want the previous %v", got, second)
	}
	third := ca.Leaf(t, cert, key, "*.example.test", "example.test")
	waitServed(t, f, third, "after the pair was mended")
}

func TestFilesMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.NewFiles(filepath.Join(dir, "no.pem"), filepath.Join(dir, "no.key"), nil); err == nil {
		t.Fatal("NewFiles of missing files: got nil error")
	}
}
