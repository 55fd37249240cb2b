package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"testing"

	"keyhole/messages"
)

func TestEscapesTarget(t *testing.T) {
	for _, tc := range []struct {
		path    string
		escapes bool
	}{
		{"/", false},
		{"/a/b/c.txt", false},
		{"/a.b/..c/.d/x..", false},
		{"/%2ehidden/file%2e", false},
		{"/files/100%25", false},
		{"/a;b=c/d", false},
		{"/caf%C3%A9", false},
		{"//double//slash", false},
		{"/../x", true},
		{"/./x", true},
		{"/a/..", true},
		{"/%2e%2e/x", true},
		{"/%2E%2E/x", true},
		{"/.%2e/x", true},
		{"/%2e./x", true},
		{"/%2e/x", true},
		{"/..%2fx", true},
		{"/a%2Fb", true},
		{"/..%5cx", true},
		{`/..\x`, true},
		{"/..;/x", true},
		{"/.;jsessionid=1/x", true},
		{"/%2e%2e%3b/x", true},
		{"/%252e%252e/x", true},
		{"/%25252e%25252e/x", true},
		{"/a%252fb", true},
	} {
		if got := escapesTarget(tc.path); got != tc.escapes {
			t.Errorf("escapesTarget(%q): got %v, want %v", tc.path, got, tc.escapes)
		}
	}
}

// request refuses escaping paths only when the target has a path to
// escape from, and says so with 400.
func TestRequestRefusesPathsThatEscapeTheTarget(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		target, uri string
		wantURL     string // "" means refused
	}{
		{"http://127.0.0.1:3000/public", "/%2e%2e/private", ""},
		{"http://127.0.0.1:3000/public/", "/..%2fprivate?q=1", ""},
		{"http://127.0.0.1:3000/public", "/ok/file?q=../x", "http://127.0.0.1:3000/public/ok/file?q=../x"},
		{"http://127.0.0.1:3000/public", "/a%20b", "http://127.0.0.1:3000/public/a%20b"},
		{"http://127.0.0.1:3000", "/%2e%2e/private", "http://127.0.0.1:3000/%2e%2e/private"},
		{"http://127.0.0.1:3000/", "/../private", "http://127.0.0.1:3000/../private"},
	} {
		c, err := New(Config{Proxy: "ws://127.0.0.1:1", Target: tc.target, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		st := &stream{ctx: &streamCtx{Context: context.Background()}}
		req, err := c.request(st, &messages.RequestHead{Method: "GET", URI: tc.uri, Header: http.Header{}}, true)
		switch {
		case tc.wantURL == "" && (err == nil || !errors.Is(err, errEscapesTarget) || requestStatus(err) != http.StatusBadRequest):
			t.Errorf("%s under %s: got %v (status %d), want refused with 400", tc.uri, tc.target, err, requestStatus(err))
		case tc.wantURL != "" && err != nil:
			t.Errorf("%s under %s: %v, want %s", tc.uri, tc.target, err, tc.wantURL)
		case tc.wantURL != "" && req.URL.String() != tc.wantURL:
			t.Errorf("%s under %s: got %s, want %s", tc.uri, tc.target, req.URL, tc.wantURL)
		}
	}
}
