package inspect

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guard keeps other web sites out of the inspector, which shows traffic
// and can send requests to the service. A page elsewhere cannot read it
// by DNS rebinding, since only an IP address or localhost is accepted as
// its Host, and cannot make a browser replay, since a POST from another
// origin is refused.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			writeError(w, http.StatusForbidden, errors.New("the inspector answers only by IP address or localhost"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			writeError(w, http.StatusForbidden, errors.New("cross-origin request refused"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether host names the inspector without DNS: an IP
// address, or localhost.
func localHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return net.ParseIP(h) != nil || strings.EqualFold(h, "localhost")
}

// sameOrigin reports whether r comes from the inspector's own page, or
// from no page at all (a script with curl sends no Origin).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
