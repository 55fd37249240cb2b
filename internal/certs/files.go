// Package certs gives the proxy its TLS certificates: a certificate and
// key read from files and reloaded when they change, or certificates
// issued on demand by an ACME server (golang.org/x/crypto/acme/autocert)
// for the hosts a policy accepts, kept in a cache every node shares.
package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// recheck is how often Files looks at its files again, at most.
const recheck = time.Second

// Files serves the certificate in a PEM certificate file and key file
// (typically a wildcard one), and reloads them when either file changes:
// a handshake at least a second after the last look stats both files and
// parses them again if their size or modification time moved. A pair
// that does not parse leaves the previous certificate in service.
type Files struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex // protects cert, stamp and checked
	cert    *tls.Certificate
	stamp   string    // sizes and modification times of the loaded pair
	checked time.Time // when the files were last looked at
}

// NewFiles loads the pair, or says why it cannot.
func NewFiles(certFile, keyFile string, log *slog.Logger) (*Files, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Files{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := f.stampNow()
	if err != nil {
		return nil, err
	}
	if err := f.load(stamp); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= recheck {
		f.checked = now
		f.refresh()
	}
	return f.cert, nil
}

// refresh reloads the pair if it changed. Called with mu held.
func (f *Files) refresh() {
	stamp, err := f.stampNow()
	if err != nil {
		f.log.Warn("tls certificate files unreadable; serving the loaded certificate", "err", err)
		return
	}
	if stamp == f.stamp {
		return
	}
	if err := f.load(stamp); err != nil {
		f.log.Warn("tls certificate files changed but do not load; serving the previous certificate", "err", err)
		return
	}
	f.log.Info("tls certificate reloaded", "cert", f.certFile, "not_after", f.cert.Leaf.NotAfter)
}

// load parses the pair and records stamp. Called with mu held or before
// f is shared.
func (f *Files) load(stamp string) error {
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s and key %s: %w", f.certFile, f.keyFile, err)
	}
	f.cert, f.stamp = &c, stamp
	return nil
}

func (f *Files) stampNow() (string, error) {
	stamp := ""
	for _, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("tls certificate: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}
