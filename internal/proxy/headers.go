package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"keyhole/internal/hop"
	"keyhole/messages"
)

// spoofable are the fields a visitor could use to lie about where it is;
// they are kept only from a trusted front proxy.
var spoofable = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip"}

// outbound is what the client receives of a visitor's header: every
// field but the hop-by-hop ones (and those the Connection header names),
// Expect, lookalikes and, unless the peer is a trusted front proxy, the
// forwarding fields; then the proxy's own X-Forwarded-*. The fields are
// read from the request as they are encoded: the header is not copied.
type outbound struct {
	h         http.Header
	conn      []string // the Connection field's values, which name fields to drop
	trusted   bool
	handshake bool // leave out the per-hop WebSocket handshake fields too
	xff       string
	proto     string // X-Forwarded-Proto to add, "" when the visitor's stays
	host      string // X-Forwarded-Host to add, "" when the visitor's stays
}

func (s *Server) outbound(r *http.Request) outbound {
	o := outbound{h: r.Header, conn: r.Header["Connection"]}
	host, peer := peerHost(r.RemoteAddr)
	o.trusted = s.trusted(peer)
	o.xff = host
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 && !o.drop("X-Forwarded-For") {
		o.xff = strings.Join(prior, ", ") + ", " + o.xff
	}
	if len(r.Header["X-Forwarded-Proto"]) == 0 || o.drop("X-Forwarded-Proto") {
		o.proto = s.cfg.PublicScheme
		if r.TLS != nil {
			o.proto = "https"
		}
	}
	if len(r.Header["X-Forwarded-Host"]) == 0 || o.drop("X-Forwarded-Host") {
		o.host = r.Host
	}
	if n := lookalikes(r.Header); n > 0 {
		s.stats.LookalikeHeaders.Add(int64(n))
	}
	return o
}

// drop reports whether the visitor's field name stays behind.
func (o *outbound) drop(name string) bool {
	switch {
	case hop.Is(name), name == "Expect", hop.Named(o.conn, name):
		return true
	case !o.trusted && slices.Contains(spoofable, name):
		return true
	case o.handshake && hop.IsHandshake(name):
		return true
	}
	return lookalike(name)
}

// appendFields appends the fields the client receives (see
// messages.FieldAppender).
func (o *outbound) appendFields(dst []byte) ([]byte, int, error) {
	n := 0
	var err error
	for name, vs := range o.h {
		if name == "X-Forwarded-For" || o.drop(name) {
			continue
		}
		for _, v := range vs {
			if dst, err = messages.AppendField(dst, name, v); err != nil {
				return dst, n, err
			}
		}
		n += len(vs)
	}
	add := func(name, v string) {
		if v != "" && err == nil {
			dst, err = messages.AppendField(dst, name, v)
			n++
		}
	}
	add("X-Forwarded-For", o.xff)
	add("X-Forwarded-Proto", o.proto)
	add("X-Forwarded-Host", o.host)
	return dst, n, err
}

// lookalike reports whether a field name, read with '_' as '-', is one
// the proxy sets or strips (X_Forwarded_For, X-Real_Ip,
// Proxy_Authorization): CGI-style services (PHP, nginx with
// underscores_in_headers) take both spellings as one field, so a
// lookalike would slip past the stripping. No front proxy is trusted to
// have removed them, so they go whoever the peer is.
func lookalike(name string) bool {
	return strings.IndexByte(name, '_') >= 0 && protected(http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-")))
}

// lookalikes counts the lookalike fields in h.
func lookalikes(h http.Header) int {
	n := 0
	for name := range h {
		if lookalike(name) {
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

// peerHost is the peer's address in remote, and as X-Forwarded-For gives
// it: the host part of remote itself when that is its canonical form, as
// it is for a socket's own address, so that it costs no allocation.
func peerHost(remote string) (string, netip.Addr) {
	host := hostOf(remote)
	a, _ := netip.ParseAddr(host)
	if a.Is4() {
		return host, a // IPv4 parses only in its canonical form
	}
	a = a.Unmap()
	return a.String(), a
}

func peerAddr(remote string) netip.Addr {
	a, _ := netip.ParseAddr(hostOf(remote))
	return a.Unmap()
}

// hostOf is the host part of a host:port address, or all of it.
func hostOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
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

// sourceText is sourceAddr as text, for the access log: when that is the
// peer's own IPv4 address, the host part of RemoteAddr as it stands,
// rather than a new string each request.
func (s *Server) sourceText(r *http.Request) string {
	a := s.sourceAddr(r)
	if host := hostOf(r.RemoteAddr); a.Is4() && !strings.Contains(host, ":") && a == peerAddr(r.RemoteAddr) {
		return host
	}
	return a.String()
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
