package client

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// errEscapesTarget refuses a request path that could climb out of the
// target's path once the service decodes it.
var errEscapesTarget = errors.New("request path has a dot-segment or an encoded slash, refused under the target's path")

// decodeRounds is how many times escapesTarget percent-decodes a segment:
// more than a service that decodes twice would.
const decodeRounds = 3

// escapesTarget reports whether an escaped request path holds a segment
// that is "." or "..", with or without a ";parameter" (as Tomcat reads
// "..;"), or holds a '/' or '\', after up to decodeRounds rounds of
// percent-decoding. A target's path is put in front of the request path,
// so such a segment would lead a service that decodes before it routes
// out of the target's path: "/public/%2e%2e/private" is "/private" there.
func escapesTarget(escapedPath string) bool {
	for seg := range strings.SplitSeq(escapedPath, "/") {
		for round := 0; ; round++ {
			if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." || strings.ContainsAny(seg, `/\`) {
				return true
			}
			d, err := url.PathUnescape(seg)
			if round == decodeRounds || err != nil || d == seg {
				break
			}
			seg = d
		}
	}
	return false
}

// requestStatus is the status a visitor gets when the request toward the
// service cannot be built: 400 for a path refused under the target, 502
// otherwise.
func requestStatus(err error) int {
	if errors.Is(err, errEscapesTarget) {
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}
