package client

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// TestNewRequestAsNetHTTP: the request built from a parsed URL goes out
// as the one http.NewRequestWithContext builds from its printed form.
func TestNewRequestAsNetHTTP(t *testing.T) {
	ctx := context.Background()
	for _, uri := range []string{
		"/", "/a/b?x=1&y=2", "/a%2Fb", "/caf%C3%A9?q=%20", "/p?", "//double/slash",
		"/semi;colon", "http://other.example/x?y", "*", "/with%23hash",
	} {
		for _, method := range []string{"", "GET", "OPTIONS", "PROPFIND"} {
			u, err := url.ParseRequestURI(uri)
			if err != nil {
				t.Fatal(err)
			}
			u.Scheme, u.Host = "http", "127.0.0.1:8080"
			want, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := newRequest(ctx, method, u, http.Header{"X": {"y"}})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case got.Method != want.Method:
				t.Errorf("%s %q: got method %q, want %q", method, uri, got.Method, want.Method)
			case got.URL.RequestURI() != want.URL.RequestURI():
				t.Errorf("%s %q: got request target %q, want %q", method, uri, got.URL.RequestURI(), want.URL.RequestURI())
			case got.URL.String() != want.URL.String() || got.Host != want.Host:
				t.Errorf("%s %q: got URL %q host %q, want %q host %q", method, uri, got.URL, got.Host, want.URL, want.Host)
			case got.Proto != want.Proto || got.ProtoMajor != 1 || got.ProtoMinor != 1:
				t.Errorf("%s %q: got proto %q", method, uri, got.Proto)
			case got.Context() != ctx || got.Header.Get("X") != "y":
				t.Errorf("%s %q: context or header lost", method, uri)
			}
		}
	}
}
