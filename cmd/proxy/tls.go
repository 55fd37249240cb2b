package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"

	"keyhole/internal/certs"
	"keyhole/internal/certs/rediscache"
	"keyhole/internal/proxy"
)

// tlsOptions are the flags of the proxy's own TLS.
type tlsOptions struct {
	cert, key    string
	acme         string
	acmeEmail    string
	acmeCA       string
	acmeDir      string
	httpListen   string
	httpRedirect bool
}

func tlsFlags(fs *flag.FlagSet, o *tlsOptions) {
	fs.StringVar(&o.cert, "tls-cert", "", "serve TLS on --listen with this PEM certificate `file` (e.g. a wildcard one for *.<domain> and <domain>), reloaded when it changes")
	fs.StringVar(&o.key, "tls-key", "", "PEM private key `file` of --tls-cert, reloaded when it changes")
	fs.StringVar(&o.acme, "acme", "", "serve TLS on --listen with certificates from this ACME directory `URL` (e.g. https://acme-v02.api.letsencrypt.org/directory), issued on demand for the domain and for labels with a connected client or on --allow-keys; empty: off")
	fs.StringVar(&o.acmeEmail, "acme-email", "", "contact `address` given to the ACME server")
	fs.StringVar(&o.acmeCA, "acme-ca", "", "PEM `file` of roots to trust for the ACME server's own HTTPS, beside the system's")
	fs.StringVar(&o.acmeDir, "acme-dir", "", "`directory` keeping ACME certificates and the account key when there is no --redis (with --redis they are kept in Redis, sealed with --cluster-secret) (default: keyhole/acme in the user cache directory)")
	fs.StringVar(&o.httpListen, "http-listen", "", "also serve plain HTTP on this `address` (e.g. :80), with --tls-cert or --acme: ACME HTTP-01 challenges, and everything else redirected to https")
	fs.BoolVar(&o.httpRedirect, "http-redirect", true, "on --http-listen, redirect visitors to https; false serves them there too, over plain HTTP")
}

// on says whether the proxy serves TLS itself.
func (o *tlsOptions) on() bool { return o.cert != "" || o.acme != "" }

func (o *tlsOptions) check(domain string) error {
	switch {
	case (o.cert == "") != (o.key == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case o.cert != "" && o.acme != "":
		return errors.New("--tls-cert and --acme exclude each other: one source of certificates")
	case o.acme == "" && (o.acmeEmail != "" || o.acmeCA != "" || o.acmeDir != ""):
		return errors.New("--acme-email, --acme-ca and --acme-dir need --acme")
	case o.httpListen != "" && !o.on():
		return errors.New("--http-listen needs --tls-cert or --acme: without TLS, --listen serves plain HTTP already")
	}
	if o.acme != "" {
		if !strings.Contains(strings.Trim(domain, "."), ".") {
			return fmt.Errorf("--acme needs a public --domain such as tunnel.example.com, not %q", domain)
		}
		if u, err := url.Parse(o.acme); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--acme %q: want the https:// URL of an ACME directory", o.acme)
		}
	}
	return nil
}

// tlsSetup is the proxy's TLS once wired.
type tlsSetup struct {
	config    *tls.Config
	challenge func(http.Handler) http.Handler // HTTP-01 answers before a fallback; nil without ACME
	close     func()
}

// setupTLS returns nil without --tls-cert or --acme.
func setupTLS(o *options, srv *proxy.Server, log *slog.Logger) (*tlsSetup, error) {
	t := &o.tls
	switch {
	case t.cert != "":
		f, err := certs.NewFiles(t.cert, t.key, log)
		if err != nil {
			return nil, err
		}
		return &tlsSetup{config: &tls.Config{GetCertificate: f.GetCertificate, MinVersion: tls.VersionTLS12}, close: func() {}}, nil
	case t.acme != "":
		return setupACME(o, srv, log)
	}
	return nil, nil
}

func setupACME(o *options, srv *proxy.Server, log *slog.Logger) (*tlsSetup, error) {
	cfg := certs.ACMEConfig{
		Directory: o.tls.acme,
		Email:     o.tls.acmeEmail,
		Policy:    srv.CertificateWanted,
		Domain:    o.domain,
		Logger:    log,
	}
	if o.tls.acmeCA != "" {
		roots, err := loadRoots(o.tls.acmeCA)
		if err != nil {
			return nil, err
		}
		cfg.Roots = roots
	}
	closeCache := func() {}
	if o.redis != "" {
		opts, err := redisOptions(o.redis)
		if err != nil {
			return nil, err
		}
		opts.PoolSize = 4
		client := redis.NewUniversalClient(opts)
		c, err := rediscache.New(client, o.redisPrefix, []byte(o.clusterSecret))
		if err != nil {
			client.Close()
			return nil, err
		}
		cfg.Cache, cfg.Lock, closeCache = c, c, func() { client.Close() }
	} else {
		dir, err := acmeDir(o.tls.acmeDir)
		if err != nil {
			return nil, err
		}
		cfg.Cache = autocert.DirCache(dir)
	}
	a, err := certs.NewACME(cfg)
	if err != nil {
		closeCache()
		return nil, err
	}
	return &tlsSetup{config: a.TLSConfig(), challenge: a.HTTPHandler, close: closeCache}, nil
}

func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--acme-ca: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--acme-ca %s: no PEM certificate in it", file)
	}
	return roots, nil
}

func acmeDir(dir string) (string, error) {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("--acme-dir: no default: %w", err)
		}
		dir = filepath.Join(cache, "keyhole", "acme")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("--acme-dir: %w", err)
	}
	return dir, nil
}

// serveHTTP serves --http-listen until the returned function is called:
// ACME HTTP-01 challenges, then a redirect to https (or the proxy itself
// with --http-redirect=false).
func serveHTTP(o *options, t *tlsSetup, srv *proxy.Server, httpsPort string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", o.tls.httpListen)
	if err != nil {
		return nil, fmt.Errorf("--http-listen: %w", err)
	}
	var h http.Handler = redirect(httpsPort)
	if !o.tls.httpRedirect {
		h = srv
	}
	if t.challenge != nil {
		h = t.challenge(h)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    proxy.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	log.Info("serving plain http", "addr", ln.Addr().String(), "redirect", o.tls.httpRedirect)
	return func() {
		hs.Close()
		<-done
	}, nil
}

// redirect sends every request to the same host and path over https, on
// port (left out when 443). A permanent redirect keeps the method.
func redirect(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := certs.CanonicalHost(r.Host)
		if host == "" {
			http.Error(w, "keyhole: use https", http.StatusBadRequest)
			return
		}
		if port != "" && port != "443" {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
