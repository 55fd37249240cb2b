package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig configures an ACME manager. Zero values mean the defaults.
type ACMEConfig struct {
	Directory string         // the ACME directory URL, e.g. Let's Encrypt's
	Email     string         // contact address given to the ACME server; "" for none
	Roots     *x509.CertPool // roots to trust for the ACME server's own HTTPS; nil for the system's
	Cache     autocert.Cache // where certificates, the account key and HTTP-01 tokens live
	// Lock, when set, is held across the nodes sharing Cache while one
	// of them asks for a host's first certificate, so the others wait
	// for it and take it from the cache rather than order their own.
	Lock Locker
	// Policy says whether a host may have a certificate: nil for yes. It
	// is asked before any order is placed.
	Policy func(ctx context.Context, host string) error
	// Domain is the apex: a handshake without a name (a client that
	// dialed an address) gets its certificate, and one for a name that is
	// neither Domain nor directly under it is refused at once, with no
	// look-up anywhere. Empty: no such checks.
	Domain string
	Logger *slog.Logger
}

// Locker is a lock shared by the nodes of a cluster, one per name.
type Locker interface {
	// Lock waits until it holds name's lock or ctx is done. The returned
	// function releases it.
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// issueTimeout bounds one first issuance, the wait for another node's
// included.
const issueTimeout = 2 * time.Minute

// ACME issues certificates on demand: the first handshake for a host the
// policy accepts orders its certificate, later ones (on any node sharing
// the cache) are served from memory or the cache. autocert renews them
// before they expire.
type ACME struct {
	m      *autocert.Manager
	lock   Locker
	policy func(ctx context.Context, host string) error
	domain string
	log    *slog.Logger

	mu    sync.RWMutex        // protects known
	known map[string]struct{} // hosts whose certificate this node has served
}

// NewACME returns a manager for cfg.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if cfg.Directory == "" {
		return nil, errors.New("acme: no directory URL")
	}
	if cfg.Cache == nil {
		return nil, errors.New("acme: no certificate cache")
	}
	if cfg.Policy == nil {
		cfg.Policy = func(context.Context, string) error { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &ACME{lock: cfg.Lock, policy: cfg.Policy, domain: strings.TrimSuffix(strings.ToLower(cfg.Domain), "."), log: cfg.Logger, known: map[string]struct{}{}}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      cfg.Cache,
		HostPolicy: a.allow,
		Email:      cfg.Email,
		Client:     &acme.Client{DirectoryURL: cfg.Directory, HTTPClient: acmeHTTPClient(cfg.Roots), UserAgent: "keyhole"},
	}
	return a, nil
}

func acmeHTTPClient(roots *x509.CertPool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: time.Minute}
}

// allow is autocert's host policy: the configured one, on the host alone.
func (a *ACME) allow(ctx context.Context, host string) error {
	host = CanonicalHost(host)
	if err := a.policy(ctx, host); err != nil {
		a.log.Debug("no certificate for this host", "host", host, "err", err)
		return fmt.Errorf("acme: %s: %w", host, err)
	}
	return nil
}

// TLSConfig returns a TLS configuration that serves the certificates and
// answers TLS-ALPN-01 challenges; it offers HTTP/2 and HTTP/1.1.
func (a *ACME) TLSConfig() *tls.Config {
	c := a.m.TLSConfig()
	c.GetCertificate = a.GetCertificate
	c.MinVersion = tls.VersionTLS12
	return c
}

// HTTPHandler answers HTTP-01 challenges on plain HTTP (from the shared
// cache, so any node answers for an order another placed) and passes
// every other request to fallback.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	return a.m.HTTPHandler(fallback)
}

// GetCertificate is a tls.Config.GetCertificate. A host already served,
// or one the policy refuses, goes straight to autocert, which serves what
// it holds or has cached and orders nothing for a refused host. A new
// host the policy accepts is ordered under the cluster's lock.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" && a.domain != "" {
		h := *hello
		h.ServerName = a.domain
		hello = &h
	}
	host := CanonicalHost(hello.ServerName)
	if !isChallenge(hello) && !a.ours(host) {
		return nil, fmt.Errorf("acme: %s: not a host of %s", host, a.domain)
	}
	if isChallenge(hello) || a.isKnown(host) || a.lock == nil || a.allow(hello.Context(), host) != nil {
		return a.served(host, hello)
	}
	ctx, cancel := context.WithTimeout(hello.Context(), issueTimeout)
	defer cancel()
	unlock, err := a.lock.Lock(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("acme: %s: %w", host, err)
	}
	defer unlock()
	return a.served(host, hello)
}

func (a *ACME) served(host string, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := a.m.GetCertificate(hello)
	if err != nil {
		return nil, err
	}
	if !isChallenge(hello) && !a.isKnown(host) {
		a.mu.Lock()
		a.known[host] = struct{}{}
		a.mu.Unlock()
		a.log.Info("serving acme certificate", "host", host)
	}
	return c, nil
}

// ours says whether host is the domain or directly under it.
func (a *ACME) ours(host string) bool {
	if a.domain == "" || host == a.domain {
		return true
	}
	label, ok := strings.CutSuffix(host, "."+a.domain)
	return ok && label != "" && !strings.Contains(label, ".")
}

func (a *ACME) isKnown(host string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.known[host]
	return ok
}

// isChallenge says whether hello is an ACME server's TLS-ALPN-01 check.
func isChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto
}

// CanonicalHost lower-cases a host, drops a port and a trailing dot.
func CanonicalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
