package messages

import (
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestRequestHeadLayout(t *testing.T) {
	h := RequestHead{
		Method: "POST", URI: "/upload?x=1", Host: "k.example.com", ContentLength: 3,
		Header: http.Header{"Set-Cookie": {"a", "b"}},
	}
	want := []byte{
		4, 'P', 'O', 'S', 'T',
		0, 11, '/', 'u', 'p', 'l', 'o', 'a', 'd', '?', 'x', '=', '1',
		0, 13, 'k', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
		0, 0, 0, 0, 0, 0, 0, 3,
		0, 2,
		0, 10, 'S', 'e', 't', '-', 'C', 'o', 'o', 'k', 'i', 'e', 0, 1, 'a',
		0, 10, 'S', 'e', 't', '-', 'C', 'o', 'o', 'k', 'i', 'e', 0, 1, 'b',
	}
	got, err := AppendRequestHead(nil, &h)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestResponseHeadLayout(t *testing.T) {
	h := ResponseHead{Status: 404, ContentLength: -1, Header: http.Header{"X": {""}}}
	want := []byte{
		0x01, 0x94,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0, 1,
		0, 1, 'X', 0, 0,
	}
	got, err := AppendResponseHead(nil, &h)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestRequestHeadRoundTrip(t *testing.T) {
	cookies := make([]string, 50)
	for i := range cookies {
		cookies[i] = "c" + strings.Repeat("x", i) + "=1"
	}
	tests := []struct {
		name string
		in   RequestHead
		want http.Header // nil: the same as in.Header
	}{
		{name: "nil header", in: RequestHead{Method: "GET", URI: "/", ContentLength: -1}, want: http.Header{}},
		{name: "empty value list dropped", in: RequestHead{Method: "GET", URI: "/", Header: http.Header{"A": {}, "B": {"1"}}}, want: http.Header{"B": {"1"}}},
		{name: "lower-case names come out canonical", in: RequestHead{Method: "GET", URI: "/", Header: http.Header{
			"transfer-encoding": {"chunked"}, "x-forwarded-for": {"1.2.3.4", "5.6.7.8"},
		}}, want: http.Header{"Transfer-Encoding": {"chunked"}, "X-Forwarded-For": {"1.2.3.4", "5.6.7.8"}}},
		{name: "many cookies in order", in: RequestHead{Method: "GET", URI: "/", Header: http.Header{"Cookie": cookies}}},
		{name: "binary value", in: RequestHead{Method: "GET", URI: "/", Host: "h", Header: http.Header{"X-Bin": {obsText, "", obsText}}}},
		{name: "websocket", in: RequestHead{URI: "/socket", Host: "h", Header: http.Header{
			"Sec-Websocket-Protocol": {"a", "b"}, "Origin": {"https://h"},
		}}},
		{name: "long fields", in: RequestHead{Method: strings.Repeat("M", 255), URI: "/" + strings.Repeat("u", 30000), Host: strings.Repeat("h", 30000)}, want: http.Header{}},
		{name: "typical", in: typicalRequestHead()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			if tt.want != nil {
				want.Header = tt.want
			}
			prefix := []byte("prefix")
			enc, err := AppendRequestHead(bytes.Clone(prefix), &tt.in)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !bytes.HasPrefix(enc, prefix) {
				t.Fatalf("got %q at the start, want the prefix %q kept", enc[:len(prefix)], prefix)
			}
			got, err := ParseRequestHead(enc[len(prefix):])
			if err != nil {
				t.Fatalf("decoding: got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestResponseHeadRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   ResponseHead
		want http.Header
	}{
		{name: "no header", in: ResponseHead{Status: 204}, want: http.Header{}},
		{name: "set-cookie in order", in: ResponseHead{Status: 200, ContentLength: 5, Header: http.Header{
			"Set-Cookie": {"z=26", "a=1", "m=13", "a=2"}, "Content-Type": {"text/html; charset=utf-8"},
		}}},
		{name: "lower-case name", in: ResponseHead{Status: 101, ContentLength: -1, Header: http.Header{"upgrade": {"websocket"}}},
			want: http.Header{"Upgrade": {"websocket"}}},
		{name: "typical", in: typicalResponseHead()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			if tt.want != nil {
				want.Header = tt.want
			}
			enc, err := AppendResponseHead(nil, &tt.in)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got, err := ParseResponseHead(enc)
			if err != nil {
				t.Fatalf("decoding: got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestAppendRequestHeadRefuses(t *testing.T) {
	big := strings.Repeat("x", 1<<16)
	manyFields := make([]string, 1<<16)
	tests := []struct {
		name string
		in   RequestHead
		want error
	}{
		{name: "method of 256 bytes", in: RequestHead{Method: strings.Repeat("G", 256)}, want: ErrTooLarge},
		{name: "uri of 65536 bytes", in: RequestHead{Method: "GET", URI: big}, want: ErrTooLarge},
		{name: "host of 65536 bytes", in: RequestHead{Method: "GET", Host: big}, want: ErrTooLarge},
		{name: "header name of 65536 bytes", in: RequestHead{Method: "GET", Header: http.Header{big: {"v"}}}, want: ErrTooLarge},
		{name: "header value of 65536 bytes", in: RequestHead{Method: "GET", Header: http.Header{"X": {big}}}, want: ErrTooLarge},
		{name: "65536 header fields", in: RequestHead{Method: "GET", Header: http.Header{"X": manyFields}}, want: ErrTooLarge},
		{name: "payload over MaxPayload", in: RequestHead{Method: "GET", URI: big[:40000], Host: big[:40000]}, want: ErrTooLarge},
		{name: "headers over MaxPayload", in: RequestHead{Method: "GET", Header: http.Header{"A": {big[:40000]}, "B": {big[:40000]}}}, want: ErrTooLarge},
		{name: "content length -2", in: RequestHead{Method: "GET", ContentLength: -2}, want: ErrMalformed},
		{name: "method with space", in: RequestHead{Method: "GET /"}, want: ErrMalformed},
		{name: "uri with CR LF", in: RequestHead{Method: "GET", URI: "/\r\nX: 1"}, want: ErrMalformed},
		{name: "host with NUL", in: RequestHead{Method: "GET", Host: "h\x00"}, want: ErrMalformed},
		{name: "empty header name", in: RequestHead{Method: "GET", Header: http.Header{"": {"v"}}}, want: ErrMalformed},
		{name: "header name with LF", in: RequestHead{Method: "GET", Header: http.Header{"X\n": {"v"}}}, want: ErrMalformed},
		{name: "header name with colon", in: RequestHead{Method: "GET", Header: http.Header{"X:": {"v"}}}, want: ErrMalformed},
		{name: "header value with CR", in: RequestHead{Method: "GET", Header: http.Header{"X": {"ok", "a\rb"}}}, want: ErrMalformed},
		{name: "header value with LF", in: RequestHead{Method: "GET", Header: http.Header{"X": {"a\n"}}}, want: ErrMalformed},
		{name: "header value with NUL", in: RequestHead{Method: "GET", Header: http.Header{"X": {"\x00"}}}, want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendRequestHead(dst, &tt.in)
			checkErr(t, err, tt.want)
			if string(got) != "keep" {
				t.Fatalf("got dst %.20q, want it left as %q", got, "keep")
			}
		})
	}
}

func TestAppendResponseHeadRefuses(t *testing.T) {
	big := strings.Repeat("x", 40000)
	tests := []struct {
		name string
		in   ResponseHead
		want error
	}{
		{name: "status 0", in: ResponseHead{}, want: ErrMalformed},
		{name: "status 99", in: ResponseHead{Status: 99}, want: ErrMalformed},
		{name: "status 1000", in: ResponseHead{Status: 1000}, want: ErrMalformed},
		{name: "status -200", in: ResponseHead{Status: -200}, want: ErrMalformed},
		{name: "status 65736 (200 mod 65536)", in: ResponseHead{Status: 65536 + 200}, want: ErrMalformed},
		{name: "content length -2", in: ResponseHead{Status: 200, ContentLength: -2}, want: ErrMalformed},
		{name: "header value with LF", in: ResponseHead{Status: 200, Header: http.Header{"Set-Cookie": {"a\nb"}}}, want: ErrMalformed},
		{name: "header name with space", in: ResponseHead{Status: 200, Header: http.Header{"Set Cookie": {"a"}}}, want: ErrMalformed},
		{name: "payload over MaxPayload", in: ResponseHead{Status: 200, Header: http.Header{"Set-Cookie": {big, big}}}, want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendResponseHead(dst, &tt.in)
			checkErr(t, err, tt.want)
			if string(got) != "keep" {
				t.Fatalf("got dst %.20q, want it left as %q", got, "keep")
			}
		})
	}
}

// TestDecodedValuesIndependent checks that appending to one decoded header's
// values cannot overwrite another's (they share one backing array).
func TestDecodedValuesIndependent(t *testing.T) {
	in := respHead(200, -1).fields("A", "1", "B", "2", "C", "3")
	h, err := ParseResponseHead(in)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	h.Header["A"] = append(h.Header["A"], "x")
	h.Header.Add("B", "y")
	want := http.Header{"A": {"1", "x"}, "B": {"2", "y"}, "C": {"3"}}
	if !reflect.DeepEqual(h.Header, want) {
		t.Fatalf("got %v, want %v", h.Header, want)
	}
}

// TestMaximalHead decodes a head as large as a frame allows, with as many
// header fields as fit.
func TestMaximalHead(t *testing.T) {
	// The smallest valid field is a one-letter name with a one-byte value.
	n := (MaxPayload - 12) / 6
	w := respHead(200, -1).u16(n)
	for i := 0; i < n; i++ {
		w = append(w, 0, 1, 'A', 0, 1, 'v')
	}
	if len(w) > MaxPayload {
		t.Fatalf("got a %d-byte payload, want at most %d", len(w), MaxPayload)
	}
	h, err := ParseResponseHead(w)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if got := len(h.Header["A"]); got != n {
		t.Fatalf("got %d values, want %d", got, n)
	}
	if _, err := Parse(frame(TypeHTTPResponse, 0, testID, w)); err != nil {
		t.Fatalf("as a frame: got error %v, want none", err)
	}
}

func typicalRequestHead() RequestHead {
	return RequestHead{
		Method: "GET", URI: "/api/v1/items?limit=20&cursor=abc", Host: "sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq.tunnel.example.com",
		ContentLength: 0,
		Header: http.Header{
			"Accept":            {"application/json"},
			"Accept-Encoding":   {"gzip, deflate, br"},
			"Accept-Language":   {"en-US,en;q=0.9"},
			"Authorization":     {"Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl"},
			"Cookie":            {"session=0123456789abcdef", "theme=dark"},
			"User-Agent":        {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},
			"X-Forwarded-For":   {"203.0.113.7"},
			"X-Forwarded-Host":  {"sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq.tunnel.example.com"},
			"X-Forwarded-Proto": {"https"},
			"Referer":           {"https://sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq.tunnel.example.com/"},
		},
	}
}

func typicalResponseHead() ResponseHead {
	return ResponseHead{
		Status: 200, ContentLength: 1234,
		Header: http.Header{
			"Cache-Control":  {"no-store"},
			"Content-Type":   {"application/json; charset=utf-8"},
			"Date":           {"Mon, 02 Jan 2006 15:04:05 GMT"},
			"Etag":           {`"33a64df551425fcc55e4d42a148795d9f25f89d4"`},
			"Server":         {"private/1.0"},
			"Set-Cookie":     {"session=0123456789abcdef; Path=/; HttpOnly; Secure", "theme=dark; Path=/"},
			"Vary":           {"Accept-Encoding"},
			"X-Request-Id":   {"f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"},
			"Content-Length": {"1234"},
		},
	}
}

// TestCanonicalName: canonicalName takes the names validName takes and
// gives http.CanonicalHeaderKey's form of each.
func TestCanonicalName(t *testing.T) {
	names := []string{"", "a", "A", "content-type", "Content-Type", "CONTENT-TYPE", "x-", "-x", "x--y", "X_forwarded_for",
		"x_Y-z", "1a-2b", "a b", "a:b", "é", "Set-Cookie", "www-authenticate", "Www-Authenticate", "!#$%&'*+-.^_`|~"}
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "ab"+string([]byte{byte(c)})+"cd")
	}
	for _, n := range names {
		got, ok := canonicalName(n)
		if ok != validName(n) {
			t.Errorf("%q: ok %v, validName %v", n, ok, validName(n))
		}
		if ok && got != http.CanonicalHeaderKey(n) {
			t.Errorf("%q: got %q, want %q", n, got, http.CanonicalHeaderKey(n))
		}
	}
}
