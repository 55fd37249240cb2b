package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// TLSAskPath answers whether a host should have a certificate: 200 for
// yes, 404 for no (Caddy's on_demand_tls ask calls it with ?domain=HOST).
const TLSAskPath = "/_keyhole/tls-ask"

// Why CertificateWanted refuses a host.
var (
	ErrNoCertificate = errors.New("not a host of this proxy")
	ErrNoClient      = errors.New("no client connected for this label on any node, and the key is not on --allow-keys")
)

// CertificateWanted says whether host deserves a TLS certificate: the
// apex (client links arrive there) and <label>.<domain> whose label has a
// link on any node or is allowed by Config.Allow (when one is set). nil
// means yes. host is taken as canonicalHost does.
func (s *Server) CertificateWanted(ctx context.Context, host string) error {
	host = canonicalHost(host)
	if host == s.cfg.Domain {
		return nil
	}
	label, ok := s.labelOf(host)
	if !ok {
		return ErrNoCertificate
	}
	if s.tunnel(label) != nil || (s.cfg.Allow != nil && s.cfg.Allow(label)) {
		return nil
	}
	nodes, err := s.cfg.Registry.Lookup(ctx, label)
	if err != nil {
		return fmt.Errorf("look up %s: %w", label, err)
	}
	if len(nodes) == 0 {
		return ErrNoClient
	}
	return nil
}

func (s *Server) serveTLSAsk(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Query().Get("domain")
	if host == "" {
		http.Error(w, "keyhole: want ?domain=HOST", http.StatusBadRequest)
		return
	}
	if err := s.CertificateWanted(r.Context(), host); err != nil {
		code := http.StatusNotFound
		if !errors.Is(err, ErrNoCertificate) && !errors.Is(err, ErrNoClient) {
			code = http.StatusServiceUnavailable
			s.log.Warn("tls ask", "domain", host, "err", err)
		}
		http.Error(w, http.StatusText(code), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}
