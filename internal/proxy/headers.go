package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"keyhole/internal/hop"
)

// spoofable are the fields a visitor could use to lie about where it is;
// they are kept only from a trusted front proxy.
var spoofable = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip"}

// outboundHeader is what the client receives of a visitor's header:
// hop-by-hop fields removed first, then the proxy's X-Forwarded-* set.
func (s *Server) outboundHeader(r *http.Request) http.Header {
	h := r.Header.Clone()
	if h == nil {
		h = make(http.Header, 4)
	}
	hop.Remove(h)
	// The proxy answered any Expect itself and has the body.
	delete(h, "Expect")
	if n := dropLookalikes(h); n > 0 {
		s.stats.LookalikeHeaders.Add(int64(n))
	}
	peer := peerAddr(r.RemoteAddr)
	trusted := s.trusted(peer)
	if !trusted {
		for _, f := range spoofable {
			delete(h, f)
		}
	}
	xff := peer.String()
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + xff
	}
	vals := make([]string, 0, 3) // one array for the values set here
	vals = append(vals, xff)
	h["X-Forwarded-For"] = vals[0:1:1]
	if len(h["X-Forwarded-Proto"]) == 0 {
		proto := s.cfg.PublicScheme
		if r.TLS != nil {
			proto = "https"
		}
		vals = append(vals, proto)
		h["X-Forwarded-Proto"] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if len(h["X-Forwarded-Host"]) == 0 {
		vals = append(vals, r.Host)
		h["X-Forwarded-Host"] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return h
}

// dropLookalikes deletes from h every field whose name, read with '_' as
// '-', is one the proxy sets or strips (X_Forwarded_For, X-Real_Ip,
// Proxy_Authorization): CGI-style services (PHP, nginx with
// underscores_in_headers) take both spellings as one field, so a
// lookalike would slip past the stripping. No front proxy is trusted to
// have removed them, so they go whoever the peer is. It returns how many
// it deleted.
func dropLookalikes(h http.Header) int {
	n := 0
	for name := range h {
		if !strings.Contains(name, "_") {
			continue
		}
		if protected(http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))) {
			delete(h, name)
			n++
		}
	}
	return n
}

// protected reports whether the canonical name is a field the proxy sets
// or strips from a visitor's request.
func protected(name string) bool {
	return slices.Contains(spoofable, name) || hop.Is(name) || name == "Expect"
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// sourceAddr is the address a request comes from, for limits: the peer's
// (the visitor's own under the PROXY protocol), or, when the peer is a
// trusted front proxy, the nearest address in X-Forwarded-For that is
// not a trusted proxy, which is the one the outermost trusted front saw.
func (s *Server) sourceAddr(r *http.Request) netip.Addr {
	src := peerAddr(r.RemoteAddr)
	hops := r.Header["X-Forwarded-For"]
	for i := len(hops) - 1; i >= 0 && s.trusted(src); i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0 && s.trusted(src); j-- {
			a := peerAddr(strings.TrimSpace(list[j]))
			if !a.IsValid() {
				return src // a garbled entry: the last address vouched for
			}
			src = a
		}
	}
	return src
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isolateCookies applies HostOnlyCookies to a response for a visitor of
// host (the request's Host).
func (s *Server) isolateCookies(h http.Header, host string) {
	if s.cfg.HostOnlyCookies && len(h["Set-Cookie"]) > 0 {
		s.stats.CookieDomains.Add(int64(hostOnlyCookies(h, canonicalHost(host))))
	}
}

// hostOnlyCookies removes, from each Set-Cookie in h, a Domain attribute
// that names anything but host. Every tunnel is a sibling under the
// proxy's domain, so a cookie for Domain=<domain> (or a parent of it)
// would reach every other tunnel; without the attribute the browser keeps
// the cookie for host alone. Cookies that script sets never pass here.
// It returns how many attributes it removed.
func hostOnlyCookies(h http.Header, host string) int {
	removed := 0
	for i, c := range h["Set-Cookie"] {
		parts := strings.Split(c, ";")
		kept := parts[:1] // name=value
		for _, p := range parts[1:] {
			name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(name), "Domain") {
				d := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(value), "."))
				if d != host {
					removed++
					continue
				}
			}
			kept = append(kept, p)
		}
		if len(kept) != len(parts) {
			h["Set-Cookie"][i] = strings.Join(kept, ";")
		}
	}
	return removed
}
