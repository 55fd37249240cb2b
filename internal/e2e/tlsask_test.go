package e2e

import (
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
)

func labelOf(key ed25519.PrivateKey) string { return identity.Label(key.Public().(ed25519.PublicKey)) }

// The endpoint Caddy's on_demand_tls ask calls says yes for the apex and
// for labels with a client on any node or on the allow list, no for
// anything else, on the apex host and on the ops listener.
func TestTLSAsk(t *testing.T) {
	srv := redistest.Start(t)
	a, b, _, _, _ := redisPair(t, srv)
	connected := newKey(t)
	startClient(t, a, backend(t, echo).URL, connected)
	allowedKey, otherKey := newKey(t), newKey(t)
	allowed := labelOf(allowedKey)
	single := startProxy(t, proxy.Config{Allow: func(l string) bool { return l == allowed }})

	ops := httptest.NewServer(b.OpsHandler())
	t.Cleanup(ops.Close)
	cases := []struct {
		name, base, domain string
		want               int
	}{
		{"connected label, its node", "http://" + a.addr, labelOf(connected) + ".localhost", 200},
		{"connected label, another node", "http://" + b.addr, labelOf(connected) + ".localhost", 200},
		{"connected label, with port and upper case", "http://" + b.addr, strings.ToUpper(labelOf(connected)) + ".LOCALHOST:443", 200},
		{"connected label, ops listener", ops.URL, labelOf(connected) + ".localhost", 200},
		{"apex", "http://" + b.addr, "localhost", 200},
		{"label with no client", "http://" + b.addr, labelOf(otherKey) + ".localhost", 404},
		{"allowed label with no client", "http://" + single.addr, allowed + ".localhost", 200},
		{"label neither allowed nor connected", "http://" + single.addr, labelOf(otherKey) + ".localhost", 404},
		{"host outside the domain", "http://" + b.addr, "example.com", 404},
		{"not a label", "http://" + b.addr, "www.localhost", 404},
		{"no domain", "http://" + b.addr, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := get(t, c.base+proxy.TLSAskPath+"?domain="+url.QueryEscape(c.domain), "")
			if code != c.want {
				t.Errorf("ask %q: got %d %q, want %d", c.domain, code, body, c.want)
			}
		})
	}
	if code, _ := get(t, "http://"+a.addr+proxy.TLSAskPath+"?domain=localhost", "elsewhere.example"); code != http.StatusNotFound {
		t.Errorf("ask on a host outside the domain: got %d, want 404 (only the apex serves it)", code)
	}
}
