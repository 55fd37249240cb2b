package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestHostOnlyCookies(t *testing.T) {
	const host = "abc.tunnel.example.com"
	for _, tc := range []struct{ in, want string }{
		{"a=1", "a=1"},
		{"a=1; Path=/; HttpOnly", "a=1; Path=/; HttpOnly"},
		{"a=1; Domain=tunnel.example.com; Path=/", "a=1; Path=/"},
		{"a=1; domain=.TUNNEL.example.com", "a=1"},
		{"a=1; Path=/; Domain=example.com; Secure", "a=1; Path=/; Secure"},
		{"a=1;Domain=com;SameSite=Lax", "a=1;SameSite=Lax"},
		{"a=1; Domain=other.tunnel.example.com", "a=1"},
		{"a=1; Domain=" + host + "; Path=/", "a=1; Domain=" + host + "; Path=/"},
		{"a=1; Domain=.ABC.tunnel.example.com", "a=1; Domain=.ABC.tunnel.example.com"},
		{"a=x;y; Domain=example.com", "a=x;y"},       // a malformed value keeps its bytes
		{"Domain=example.com", "Domain=example.com"}, // the name=value pair itself is never touched
		{"a=1; Domain=", "a=1"},
	} {
		h := http.Header{"Set-Cookie": {tc.in}}
		hostOnlyCookies(h, host)
		if got := h.Get("Set-Cookie"); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	h := http.Header{"Set-Cookie": {"a=1; Domain=example.com", "b=2", "c=3; Domain=" + host, "d=4; Domain=tunnel.example.com; Domain=x"}}
	if n := hostOnlyCookies(h, host); n != 3 {
		t.Errorf("removed %d attributes, want 3", n)
	}
}

func TestLookalike(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop bool
	}{
		{"X_forwarded_for", true},
		{"X-Real_ip", true},
		{"X_Real_IP", true},
		{"X-Forwarded_host", true},
		{"Proxy_authorization", true},
		{"Transfer_encoding", true},
		{"X-Forwarded-For", false}, // the real one is the trusted-peer rule's business
		{"X_unrelated", false},
		{"Content_type", false},
	} {
		if got := lookalike(tc.name); got != tc.drop {
			t.Errorf("%s: lookalike %v, want %v", tc.name, got, tc.drop)
		}
		// A lookalike stays behind whoever the peer is.
		if o := (outbound{trusted: true}); tc.drop && !o.drop(tc.name) {
			t.Errorf("%s: sent on from a trusted peer", tc.name)
		}
	}
}

// TestLengthField: the service's own Content-Length serves when it is the
// declared length written plainly; anything else is written afresh.
func TestLengthField(t *testing.T) {
	for _, tc := range []struct {
		sent []string
		n    int64
		want string
		same bool
	}{
		{[]string{"1024"}, 1024, "1024", true},
		{[]string{"0"}, 0, "0", true},
		{nil, 5, "5", false},
		{[]string{"12"}, 13, "13", false},
		{[]string{"012"}, 12, "12", false},
		{[]string{"+12"}, 12, "12", false},
		{[]string{" 12"}, 12, "12", false},
		{[]string{"12", "12"}, 12, "12", false},
		{[]string{""}, 0, "0", false},
	} {
		got := lengthField(tc.sent, tc.n)
		if len(got) != 1 || got[0] != tc.want || (len(tc.sent) > 0 && &got[0] == &tc.sent[0]) != tc.same {
			t.Errorf("%q for %d: got %q (the service's own: %v), want %q (%v)", tc.sent, tc.n, got, len(tc.sent) > 0 && &got[0] == &tc.sent[0], tc.want, tc.same)
		}
	}
}

// TestSourceText: the access log's visitor is sourceAddr written out; for
// a peer's own IPv4 address, without a new string.
func TestSourceText(t *testing.T) {
	s, err := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ remote, xff, want string }{
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"[::1]:5000", "", "::1"},
		{"[::ffff:192.0.2.9]:5000", "", "192.0.2.9"},
		{"[2001:db8::0:1]:5000", "", "2001:db8::1"},
		{"10.1.2.3:5000", "198.51.100.7", "198.51.100.7"},
		{"127.0.0.1:5000", "198.51.100.7", "127.0.0.1"}, // not a trusted proxy
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got, want := s.sourceText(r), s.sourceAddr(r).String(); got != c.want || got != want {
			t.Errorf("%s with X-Forwarded-For %q: %q, want %q (sourceAddr %q)", c.remote, c.xff, got, c.want, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	if n := testing.AllocsPerRun(100, func() { s.sourceText(r) }); n != 0 {
		t.Errorf("%v allocations for a peer's IPv4 address", n)
	}
}
