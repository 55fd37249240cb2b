package client

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestWriteRequestAsNetHTTP: writeRequest writes what req.Write writes,
// the request line, Host and User-Agent in place and the other fields in
// any order of their names (each name's values in order).
func TestWriteRequestAsNetHTTP(t *testing.T) {
	u := func(s string) *url.URL {
		x, err := url.ParseRequestURI(s)
		if err != nil {
			t.Fatal(err)
		}
		x.Scheme, x.Host = "http", "127.0.0.1:3000"
		return x
	}
	for _, tc := range []struct {
		name string
		req  http.Request
	}{
		{"plain GET", http.Request{Method: "GET", URL: u("/a?b=c"), Host: "t.example", Header: http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"}}}},
		{"HEAD", http.Request{Method: "HEAD", URL: u("/"), Host: "t.example", Header: http.Header{}}},
		{"no User-Agent field: the default", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"X": {"1"}}}},
		{"empty User-Agent: none", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"User-Agent": {""}}}},
		{"two User-Agents: the first", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"User-Agent": {" a ", "b"}}}},
		{"repeated fields keep their order", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"Cookie": {"a=1", "b=2"}, "X-Forwarded-For": {"1.2.3.4"}, "Accept": {"text/html"}}}},
		{"fields net/http leaves out", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"Host": {"evil"}, "Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Y": {"y"}}}},
		{"white space and line breaks in values", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"A": {"  padded\t"}, "B": {"x\r\ny"}, "C": {""}}}},
		{"no Host: the URL's", http.Request{Method: "GET", URL: u("/p"), Header: http.Header{}}},
		{"invalid Host: sent empty", http.Request{Method: "GET", URL: u("/p"), Host: "a b", Header: http.Header{}}},
		{"escaped path", http.Request{Method: "GET", URL: u("/a%20b/%2F?q=%00x"), Host: "t.example", Header: http.Header{}}},
		{"Connection close field", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{"Connection": {"close"}}}},
		// These take req.Write's own way.
		{"punycode host", http.Request{Method: "GET", URL: u("/"), Host: "bücher.example", Header: http.Header{}}},
		{"zone", http.Request{Method: "GET", URL: u("/"), Host: "[fe80::1%25eth0]:80", Header: http.Header{}}},
		{"POST", http.Request{Method: "POST", URL: u("/"), Host: "t.example", Header: http.Header{}, Body: http.NoBody}},
		{"Close", http.Request{Method: "GET", URL: u("/"), Host: "t.example", Header: http.Header{}, Close: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want, got bytes.Buffer
			werr := tc.req.Write(&want)
			bw := bufio.NewWriter(&got)
			gerr := writeRequest(bw, &tc.req)
			bw.Flush()
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("req.Write: %v, writeRequest: %v", werr, gerr)
			}
			if w, g := normal(want.String()), normal(got.String()); w != g {
				t.Errorf("writeRequest wrote\n%q\nreq.Write wrote\n%q", got.String(), want.String())
			}
		})
	}
}

func TestWriteRequestRefuses(t *testing.T) {
	req := &http.Request{Method: "GET", URL: &url.URL{Path: "/", RawQuery: "a\x01"}, Host: "t.example", Header: http.Header{}}
	var got bytes.Buffer
	if err := writeRequest(bufio.NewWriter(&got), req); err == nil {
		t.Error("a control byte in the target was written")
	}
	req = &http.Request{Method: "GET", URL: &url.URL{Path: "/"}, Host: "t.example", Header: http.Header{"Bad Name": {"x"}}}
	if err := writeRequest(bufio.NewWriter(&got), req); err == nil {
		t.Error("an invalid field name was written")
	}
}

// normal sorts a head's field lines after Host and User-Agent by name,
// stably, so that only the order of different names is ignored.
func normal(head string) string {
	lines := strings.Split(head, "\r\n")
	fixed := 1
	for fixed < len(lines) && (strings.HasPrefix(lines[fixed], "Host: ") || strings.HasPrefix(lines[fixed], "User-Agent: ")) {
		fixed++
	}
	rest := lines[fixed:]
	slices.SortStableFunc(rest, func(a, b string) int {
		na, _, _ := strings.Cut(a, ":")
		nb, _, _ := strings.Cut(b, ":")
		return strings.Compare(na, nb)
	})
	return strings.Join(lines, "\r\n")
}
