package main

import (
	"fmt"
	"net/netip"
	"strings"

	"keyhole/internal/identity"
)

// maxDomain leaves room in a 253-byte host name for a label and its dot.
const maxDomain = 253 - identity.LabelLen - 1

// checkDomain accepts a DNS name (or "localhost") for --domain: no
// scheme, port or path, only letters, digits and hyphens in each label,
// short enough that <label>.<domain> is a valid host name.
func checkDomain(d string) error {
	name := strings.TrimSuffix(strings.ToLower(d), ".")
	bad := func(why string) error {
		return fmt.Errorf("--domain %q: %s; want a DNS name such as tunnel.example.com, without scheme, port or path", d, why)
	}
	switch {
	case name == "":
		return bad("empty")
	case strings.Contains(name, "://"):
		return bad("a URL")
	case strings.ContainsAny(name, ":/"):
		return bad("has a port or path")
	case isIP(name):
		return bad("an IP address; tunnels are its subdomains, so it must be a name")
	case len(name) > maxDomain:
		return bad(fmt.Sprintf("%d bytes, at most %d leave room for the tunnels' labels", len(name), maxDomain))
	}
	for l := range strings.SplitSeq(name, ".") {
		if !dnsLabel(l) {
			return bad(fmt.Sprintf("%q is not a DNS label", l))
		}
	}
	return nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// dnsLabel reports whether l is 1 to 63 letters, digits and inner hyphens.
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range []byte(l) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
