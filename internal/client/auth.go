package client

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"keyhole/messages"
)

// MinPasswordLen is the shortest password BasicAuth accepts: the tunnel's
// hostname is public, so the password is all that guards it.
const MinPasswordLen = 8

// basicAuth holds the credentials visitors must present, as SHA-256 sums
// of "user:password", compared in constant time.
type basicAuth [][sha256.Size]byte

func newBasicAuth(pairs []string) (basicAuth, error) {
	var a basicAuth
	for _, p := range pairs {
		user, pass, ok := strings.Cut(p, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("basic auth %q: want user:password", p)
		case len(pass) < MinPasswordLen:
			return nil, fmt.Errorf("basic auth for %q: the password needs at least %d characters", user, MinPasswordLen)
		}
		a = append(a, sha256.Sum256([]byte(p)))
	}
	return a, nil
}

// allows reports whether h carries one of the credentials.
func (a basicAuth) allows(h http.Header) bool {
	v := h.Get("Authorization")
	scheme, encoded, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(raw)
	found := 0
	for _, want := range a {
		found |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	return found == 1
}

// authorize checks a visitor's credentials when the client has some. It
// takes the credentials out of the request, which are the tunnel's, not
// the service's, or answers 401 itself, with a head of type t, and
// reports false.
func (s *session) authorize(st *stream, head *messages.RequestHead, t messages.Type) bool {
	if s.c.auth == nil {
		return true
	}
	if s.c.auth.allows(head.Header) {
		delete(head.Header, "Authorization")
		return true
	}
	const msg = "keyhole: this tunnel needs a user name and password\n"
	resp := &http.Response{
		StatusCode: http.StatusUnauthorized,
		Header: http.Header{
			"Www-Authenticate": {`Basic realm="keyhole", charset="UTF-8"`},
			"Content-Type":     {"text/plain; charset=utf-8"},
		},
		ContentLength: int64(len(msg)),
		Body:          io.NopCloser(strings.NewReader(msg)),
	}
	s.log.Info("request", "method", head.Method, "uri", head.URI, "status", http.StatusUnauthorized, "why", "no valid credentials")
	if _, err := s.relayResponseAs(st, resp, t); err != nil && st.ctx.Err() == nil {
		s.sendError(st.id, http.StatusBadGateway, "keyhole client: "+err.Error())
	}
	return false
}
