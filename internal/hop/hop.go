// Package hop removes the header fields that belong to one connection
// (hop-by-hop fields) so they are never forwarded across the tunnel.
package hop

import (
	"net/http"
	"slices"
	"strings"
)

// Remove deletes hop-by-hop fields from h, first every field named in any
// Connection header (all of them, however many there are and whether or
// not the first is empty), then the fixed list. It runs before a proxy
// adds fields of its own, so a sender cannot name those in Connection to
// have them removed.
func Remove(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	// One pass over the few fields a head has, not a deletion of each
	// name on the list.
	for name := range h {
		if Is(name) {
			delete(h, name)
		}
	}
}

// Is reports whether the canonical field name is one of the fixed
// hop-by-hop fields Remove always deletes: those of RFC 9110 section
// 7.6.1, plus the legacy ones proxies are expected to drop.
func Is(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// Named reports whether the canonical field name is listed in one of the
// Connection field values conn, which makes it a field Remove deletes
// too.
func Named(conn []string, name string) bool {
	for _, v := range conn {
		for t := range strings.SplitSeq(v, ",") {
			if equalFold(strings.TrimSpace(t), name) {
				return true
			}
		}
	}
	return false
}

// equalFold reports whether a and b are equal but for the case of ASCII
// letters: a token names the field whose canonical name is b.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if x, y := a[i]|0x20, b[i]|0x20; a[i] != b[i] && (x != y || x < 'a' || x > 'z') {
			return false
		}
	}
	return true
}

// handshake are the fields of one hop's WebSocket handshake; each hop
// negotiates its own key, version, extensions and accept.
var handshake = []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Accept"}

// IsHandshake reports whether the canonical field name is one of the
// per-hop WebSocket handshake fields.
func IsHandshake(name string) bool { return slices.Contains(handshake, name) }

// RemoveHandshake deletes the per-hop WebSocket handshake fields from h.
// The subprotocol offer and choice are end to end and stay.
func RemoveHandshake(h http.Header) {
	for _, f := range handshake {
		delete(h, f)
	}
}

// IsWebSocket reports whether r asks to upgrade to a WebSocket.
func IsWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
