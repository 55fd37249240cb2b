package client

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestReadSimpleResponseAsNetHTTP: whatever readSimpleResponse takes, it
// reads as http.ReadResponse does (status, fields, length, body and what
// is left after it), and what it leaves is left whole for
// http.ReadResponse.
func TestReadSimpleResponseAsNetHTTP(t *testing.T) {
	const next = "HTTP/1.1 204 No Content\r\n\r\n" // a pipelined answer after it
	for _, tc := range []struct {
		name   string
		raw    string
		method string
		quick  bool
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Thu, 03 Dec 2026 09:00:00 GMT\r\n\r\nhello", "GET", true},
		{"no reason phrase", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "GET", true},
		{"long reason", "HTTP/1.1 500 Internal  Server Error\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"repeated fields", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok", "GET", true},
		{"names not canonical, values padded", "HTTP/1.1 201 Created\r\ncontent-length:  3 \r\nx-thing:\t v \t\r\nX-EMPTY:\r\n\r\nabc", "GET", true},
		{"keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"bytes beyond ASCII in a value", "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"empty body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "POST", true},
		// These are left to http.ReadResponse.
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", "GET", false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"no length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "GET", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", "GET", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"folded line", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"space before the colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"control byte", "HTTP/1.1 200 OK\r\nX-A: 1\x01\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "GET", false},
		{"Pragma", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"head not whole yet", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", "GET", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: tc.method}
			want, wantErr := http.ReadResponse(bufio.NewReader(strings.NewReader(tc.raw+next)), req)
			br := bufio.NewReader(strings.NewReader(tc.raw + next))
			br.Peek(1) // the buffer holds all of it, as after a read from the socket
			before := br.Buffered()
			got := readSimpleResponse(br, req)
			if got == nil {
				if tc.quick {
					t.Fatal("left to http.ReadResponse")
				}
				if br.Buffered() != before {
					t.Fatalf("left to http.ReadResponse with %d bytes taken", before-br.Buffered())
				}
				return
			}
			if !tc.quick {
				t.Fatal("read quickly, want it left to http.ReadResponse")
			}
			if wantErr != nil {
				t.Fatalf("read quickly what http.ReadResponse refuses: %v", wantErr)
			}
			for _, f := range []struct {
				what      string
				got, want any
			}{
				{"Status", got.Status, want.Status}, {"StatusCode", got.StatusCode, want.StatusCode},
				{"Proto", got.Proto, want.Proto}, {"ProtoMajor", got.ProtoMajor, want.ProtoMajor}, {"ProtoMinor", got.ProtoMinor, want.ProtoMinor},
				{"Header", got.Header, want.Header}, {"ContentLength", got.ContentLength, want.ContentLength},
				{"Close", got.Close, want.Close}, {"TransferEncoding", got.TransferEncoding, want.TransferEncoding},
			} {
				if !reflect.DeepEqual(f.got, f.want) {
					t.Errorf("%s: got %#v, want %#v", f.what, f.got, f.want)
				}
			}
			gb, gerr := io.ReadAll(got.Body)
			wb, _ := io.ReadAll(want.Body)
			if string(gb) != string(wb) || gerr != nil {
				t.Errorf("body: got %q (%v), want %q", gb, gerr, wb)
			}
			if after, err := http.ReadResponse(br, nil); err != nil || after.StatusCode != 204 {
				t.Errorf("the next answer after it: %v, %v", after, err)
			}
		})
	}
}

// TestLengthBodyShort: a body that ends before its length is an
// unexpected EOF, and its last bytes come with io.EOF when it is whole.
func TestLengthBodyShort(t *testing.T) {
	b := &lengthBody{br: bufio.NewReader(strings.NewReader("abc")), left: 5}
	if got, err := io.ReadAll(b); string(got) != "abc" || err != io.ErrUnexpectedEOF {
		t.Errorf("got %q, %v; want abc, unexpected EOF", got, err)
	}
	b = &lengthBody{br: bufio.NewReader(strings.NewReader("abcdef")), left: 3}
	p := make([]byte, 10)
	if n, err := b.Read(p); n != 3 || err != io.EOF {
		t.Errorf("got %d, %v; want 3 bytes with io.EOF", n, err)
	}
}
