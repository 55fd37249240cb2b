package messages

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// This file holds the byte-level cases shared by the table tests and the
// fuzz seeds: payloads built by hand, field by field, so the tests check the
// layout PROTOCOL.md describes rather than the encoder against itself.

// wire builds a payload field by field. Every method returns a fresh slice,
// so a prefix can be shared by several cases.
type wire []byte

func (w wire) put(p ...byte) wire {
	return append(append(wire(nil), w...), p...)
}
func (w wire) u8(v int) wire     { return w.put(byte(v)) }
func (w wire) u16(v int) wire    { return w.put(byte(v>>8), byte(v)) }
func (w wire) i64(v int64) wire  { return w.put(binary.BigEndian.AppendUint64(nil, uint64(v))...) }
func (w wire) s8(s string) wire  { return w.u8(len(s)).put([]byte(s)...) }
func (w wire) s16(s string) wire { return w.u16(len(s)).put([]byte(s)...) }

// fields appends a header block of name/value pairs, in order.
func (w wire) fields(nv ...string) wire {
	w = w.u16(len(nv) / 2)
	for i := 0; i < len(nv); i += 2 {
		w = w.s16(nv[i]).s16(nv[i+1])
	}
	return w
}

// frame prefixes a payload with a header.
func frame(t Type, flags Flags, id ID, payload []byte) []byte {
	return append(AppendHeader(nil, t, flags, id), payload...)
}

// checkErr reports whether err is what the case wants: nil for nil, or an
// error wrapping want.
func checkErr(t *testing.T, err error, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("got error %v, want none", err)
	case want != nil && err == nil:
		t.Fatalf("got no error, want one wrapping %v", want)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("got error %v, want one wrapping %v", err, want)
	}
}

// knownErr reports whether err wraps one of the package's sentinels.
func knownErr(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrVersion)
}

var testID = ID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

// binaryBytes holds every byte value once.
var binaryBytes = func() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// obsText is a header value with a tab and every byte from 0x80 up, which
// field values may carry (RFC 9110 obs-text) and must keep exactly.
var obsText = "a\tb " + string(binaryBytes[0x80:])

// payloadCase is one hand-built payload and what decoding it must give.
type payloadCase struct {
	name string
	in   []byte
	want any   // the decoded value when err is nil
	err  error // the sentinel the error must wrap, or nil
}

// reqHead starts a request head up to its header block.
func reqHead(method, uri, host string, length int64) wire {
	return wire(nil).s8(method).s16(uri).s16(host).i64(length)
}

var requestHeadCases = []payloadCase{
	{
		name: "minimal",
		in:   reqHead("GET", "/", "a.example.com", -1).fields(),
		want: RequestHead{Method: "GET", URI: "/", Host: "a.example.com", ContentLength: -1, Header: map[string][]string{}},
	},
	{
		name: "websocket request has no method",
		in:   reqHead("", "/ws?x=1", "h", 0).fields("Sec-Websocket-Protocol", "chat"),
		want: RequestHead{URI: "/ws?x=1", Host: "h", Header: map[string][]string{"Sec-Websocket-Protocol": {"chat"}}},
	},
	{
		name: "post with length and query",
		in:   reqHead("POST", "/a%20b/c?q=%E2%82%AC&r", "h:8080", 512000).fields("Content-Type", "application/json"),
		want: RequestHead{Method: "POST", URI: "/a%20b/c?q=%E2%82%AC&r", Host: "h:8080", ContentLength: 512000, Header: map[string][]string{"Content-Type": {"application/json"}}},
	},
	{
		name: "largest content length",
		in:   reqHead("PUT", "*", "h", 1<<63-1).fields(),
		want: RequestHead{Method: "PUT", URI: "*", Host: "h", ContentLength: 1<<63 - 1, Header: map[string][]string{}},
	},
	{
		name: "names come out canonical",
		in:   reqHead("GET", "/", "h", -1).fields("transfer-encoding", "chunked", "x-FOO-bar", "1", "content-length", "5"),
		want: RequestHead{Method: "GET", URI: "/", Host: "h", ContentLength: -1, Header: map[string][]string{
			"Transfer-Encoding": {"chunked"}, "X-Foo-Bar": {"1"}, "Content-Length": {"5"},
		}},
	},
	{
		name: "repeated names merge in order whatever their case",
		in:   reqHead("GET", "/", "h", -1).fields("cookie", "a=1", "Accept", "*/*", "COOKIE", "b=2", "Cookie", "c=3"),
		want: RequestHead{Method: "GET", URI: "/", Host: "h", ContentLength: -1, Header: map[string][]string{
			"Cookie": {"a=1", "b=2", "c=3"}, "Accept": {"*/*"},
		}},
	},
	{
		name: "values kept byte for byte",
		in:   reqHead("PATCH", "/\x80\xff", "h", 0).fields("X-Bin", obsText, "X-Empty", "", "X-Space", "  padded  "),
		want: RequestHead{Method: "PATCH", URI: "/\x80\xff", Host: "h", Header: map[string][]string{
			"X-Bin": {obsText}, "X-Empty": {""}, "X-Space": {"  padded  "},
		}},
	},
	{
		name: "every token character in a name",
		in:   reqHead("M-._~!#$%&'*+^`|", "/", "h", -1).fields("!#$%&'*+-.^_`|~09azAZ", "v"),
		want: RequestHead{Method: "M-._~!#$%&'*+^`|", URI: "/", Host: "h", ContentLength: -1, Header: map[string][]string{
			"!#$%&'*+-.^_`|~09azaz": {"v"},
		}},
	},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "method longer than payload", in: wire(nil).u8(5).put('G', 'E', 'T'), err: ErrMalformed},
	{name: "uri longer than payload", in: wire(nil).s8("GET").u16(100).put('/'), err: ErrMalformed},
	{name: "no header block", in: reqHead("GET", "/", "h", -1), err: ErrMalformed},
	{name: "half a header count", in: reqHead("GET", "/", "h", -1).u8(0), err: ErrMalformed},
	{name: "trailing byte", in: reqHead("GET", "/", "h", -1).fields().u8(0), err: ErrMalformed},
	{name: "count above fields present", in: reqHead("GET", "/", "h", -1).u16(2).s16("A").s16("b"), err: ErrMalformed},
	{name: "count below fields present", in: reqHead("GET", "/", "h", -1).u16(1).s16("A").s16("b").s16("C").s16("d"), err: ErrMalformed},
	{name: "count far above bytes left", in: reqHead("GET", "/", "h", -1).u16(0xffff).s16("A").s16("b"), err: ErrMalformed},
	{name: "value length past the end", in: reqHead("GET", "/", "h", -1).u16(1).s16("A").u16(9).put('x'), err: ErrMalformed},
	{name: "content length -2", in: reqHead("GET", "/", "h", -2).fields(), err: ErrMalformed},
	{name: "content length min int64", in: reqHead("GET", "/", "h", -1<<63).fields(), err: ErrMalformed},
	{name: "method with space", in: reqHead("GET /", "/", "h", -1).fields(), err: ErrMalformed},
	{name: "method with CR LF", in: reqHead("GET\r\n", "/", "h", -1).fields(), err: ErrMalformed},
	{name: "method not ASCII", in: reqHead("G\xc3\x89T", "/", "h", -1).fields(), err: ErrMalformed},
	{name: "uri with CR LF", in: reqHead("GET", "/a\r\nX-Evil: 1", "h", -1).fields(), err: ErrMalformed},
	{name: "uri with NUL", in: reqHead("GET", "/a\x00", "h", -1).fields(), err: ErrMalformed},
	{name: "uri with DEL", in: reqHead("GET", "/a\x7f", "h", -1).fields(), err: ErrMalformed},
	{name: "uri with tab", in: reqHead("GET", "/a\tb", "h", -1).fields(), err: ErrMalformed},
	{name: "host with LF", in: reqHead("GET", "/", "h\nX: y", -1).fields(), err: ErrMalformed},
	{name: "empty name", in: reqHead("GET", "/", "h", -1).fields("", "v"), err: ErrMalformed},
	{name: "name with space", in: reqHead("GET", "/", "h", -1).fields("Bad Name", "v"), err: ErrMalformed},
	{name: "name with colon", in: reqHead("GET", "/", "h", -1).fields("a:b", "v"), err: ErrMalformed},
	{name: "name with CR LF", in: reqHead("GET", "/", "h", -1).fields("X\r\nY", "v"), err: ErrMalformed},
	{name: "name with NUL", in: reqHead("GET", "/", "h", -1).fields("X\x00", "v"), err: ErrMalformed},
	{name: "name with separator", in: reqHead("GET", "/", "h", -1).fields("X(1)", "v"), err: ErrMalformed},
	{name: "name not ASCII", in: reqHead("GET", "/", "h", -1).fields("X-\xc3\xa9", "v"), err: ErrMalformed},
	{name: "value with CR", in: reqHead("GET", "/", "h", -1).fields("X", "a\rb"), err: ErrMalformed},
	{name: "value with LF", in: reqHead("GET", "/", "h", -1).fields("X", "a\nb"), err: ErrMalformed},
	{name: "value with CR LF header injection", in: reqHead("GET", "/", "h", -1).fields("X", "a\r\nHost: evil"), err: ErrMalformed},
	{name: "value with NUL", in: reqHead("GET", "/", "h", -1).fields("X", "a\x00"), err: ErrMalformed},
	{name: "bad field after good ones", in: reqHead("GET", "/", "h", -1).fields("A", "1", "B", "2", "C", "\n"), err: ErrMalformed},
}

// respHead starts a response head up to its header block.
func respHead(status int, length int64) wire {
	return wire(nil).u16(status).i64(length)
}

var responseHeadCases = []payloadCase{
	{
		name: "ok",
		in:   respHead(200, 2).fields("Content-Type", "text/plain"),
		want: ResponseHead{Status: 200, ContentLength: 2, Header: map[string][]string{"Content-Type": {"text/plain"}}},
	},
	{
		name: "several Set-Cookie kept in order",
		in:   respHead(302, 0).fields("Set-Cookie", "a=1; Path=/", "Location", "/x", "set-cookie", "b=2; HttpOnly", "Set-Cookie", "c=3, d=4"),
		want: ResponseHead{Status: 302, Header: map[string][]string{
			"Set-Cookie": {"a=1; Path=/", "b=2; HttpOnly", "c=3, d=4"}, "Location": {"/x"},
		}},
	},
	{
		name: "switching protocols",
		in:   respHead(101, -1).fields("sec-websocket-protocol", "chat"),
		want: ResponseHead{Status: 101, ContentLength: -1, Header: map[string][]string{"Sec-Websocket-Protocol": {"chat"}}},
	},
	{name: "lowest status", in: respHead(100, -1).fields(), want: ResponseHead{Status: 100, ContentLength: -1, Header: map[string][]string{}}},
	{name: "highest status", in: respHead(999, -1).fields(), want: ResponseHead{Status: 999, ContentLength: -1, Header: map[string][]string{}}},
	{
		name: "binary value",
		in:   respHead(200, -1).fields("X-Bin", obsText),
		want: ResponseHead{Status: 200, ContentLength: -1, Header: map[string][]string{"X-Bin": {obsText}}},
	},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "status only", in: wire(nil).u16(200), err: ErrMalformed},
	{name: "status 0", in: respHead(0, -1).fields(), err: ErrMalformed},
	{name: "status 99", in: respHead(99, -1).fields(), err: ErrMalformed},
	{name: "status 1000", in: respHead(1000, -1).fields(), err: ErrMalformed},
	{name: "status 65535", in: respHead(0xffff, -1).fields(), err: ErrMalformed},
	{name: "content length -2", in: respHead(200, -2).fields(), err: ErrMalformed},
	{name: "trailing byte", in: respHead(200, -1).fields().u8(1), err: ErrMalformed},
	{name: "count above fields present", in: respHead(200, -1).u16(3).s16("A").s16("b"), err: ErrMalformed},
	{name: "count far above bytes left", in: respHead(200, -1).u16(0x4000), err: ErrMalformed},
	{name: "name with LF", in: respHead(200, -1).fields("Set-Cookie\n", "a"), err: ErrMalformed},
	{name: "value with CR LF", in: respHead(200, -1).fields("Set-Cookie", "a=1\r\nX: y"), err: ErrMalformed},
	{name: "value with NUL", in: respHead(200, -1).fields("Set-Cookie", "\x00"), err: ErrMalformed},
}

var testNonce = [NonceSize]byte{
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
}

var challengeCases = []payloadCase{
	{name: "ok", in: wire(testNonce[:]).s16("tunnel.example.com"), want: Challenge{Nonce: testNonce, Domain: "tunnel.example.com"}},
	{name: "empty domain", in: wire(testNonce[:]).s16(""), want: Challenge{Nonce: testNonce}},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "short nonce", in: wire(testNonce[:31]), err: ErrMalformed},
	{name: "no domain", in: wire(testNonce[:]), err: ErrMalformed},
	{name: "domain past the end", in: wire(testNonce[:]).u16(5).put('a'), err: ErrMalformed},
	{name: "trailing byte", in: wire(testNonce[:]).s16("localhost").u8(0), err: ErrMalformed},
}

var testRegistration = RegistrationRequest{
	PublicKey: [PublicKeySize]byte{31: 0xaa, 0: 0x11},
	Instance:  [InstanceSize]byte{0: 0x22, 15: 0x33},
	Timestamp: 1700000000000,
	Signature: [SignatureSize]byte{0: 0x44, 63: 0x55},
}

func registrationBytes(q RegistrationRequest) wire {
	return wire(q.PublicKey[:]).put(q.Instance[:]...).i64(q.Timestamp).put(q.Signature[:]...)
}

var registrationRequestCases = []payloadCase{
	{name: "ok", in: registrationBytes(testRegistration), want: testRegistration},
	{name: "negative timestamp", in: registrationBytes(RegistrationRequest{Timestamp: -1}), want: RegistrationRequest{Timestamp: -1}},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "one byte short", in: registrationBytes(testRegistration)[:119], err: ErrMalformed},
	{name: "one byte over", in: registrationBytes(testRegistration).u8(0), err: ErrMalformed},
}

var registrationResponseCases = []payloadCase{
	{
		name: "ok",
		in:   wire(nil).s16("abc.tunnel.example.com").s16("https://abc.tunnel.example.com"),
		want: RegistrationResponse{Hostname: "abc.tunnel.example.com", URL: "https://abc.tunnel.example.com"},
	},
	{name: "empty fields", in: wire(nil).s16("").s16(""), want: RegistrationResponse{}},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "no url", in: wire(nil).s16("h"), err: ErrMalformed},
	{name: "url past the end", in: wire(nil).s16("h").u16(3).put('x'), err: ErrMalformed},
	{name: "trailing byte", in: wire(nil).s16("h").s16("u").u8(0), err: ErrMalformed},
	{
		name: "revision 2",
		in:   wire(nil).s16("h").s16("u").u8(2).i64(512000),
		want: RegistrationResponse{Hostname: "h", URL: "u", Revision: 2, MaxBody: 512000},
	},
	{name: "revision 2, no cap", in: wire(nil).s16("h").s16("u").u8(2).i64(0), want: RegistrationResponse{Hostname: "h", URL: "u", Revision: 2}},
	{name: "revision 1 with fields", in: wire(nil).s16("h").s16("u").u8(1).i64(0), err: ErrMalformed},
	{name: "revision 2, cap cut short", in: wire(nil).s16("h").s16("u").u8(2).u16(0), err: ErrMalformed},
	{name: "revision 2, trailing byte", in: wire(nil).s16("h").s16("u").u8(2).i64(1).u8(0), err: ErrMalformed},
}

var statusCases = []payloadCase{
	{name: "error", in: wire(nil).u16(502).put([]byte("connection refused")...), want: Status{Code: 502, Text: "connection refused"}},
	{name: "close code no reason", in: wire(nil).u16(1000), want: Status{Code: 1000}},
	{name: "binary text kept", in: wire(nil).u16(0xffff).put(binaryBytes...), want: Status{Code: 0xffff, Text: string(binaryBytes)}},
	{name: "longest text", in: wire(nil).u16(1).put([]byte(strings.Repeat("x", MaxChunk))...), want: Status{Code: 1, Text: strings.Repeat("x", MaxChunk)}},
	{name: "empty", in: nil, err: ErrMalformed},
	{name: "one byte", in: wire(nil).u8(1), err: ErrMalformed},
	{name: "text over MaxChunk", in: wire(nil).u16(1).put(make([]byte, MaxChunk+1)...), err: ErrTooLarge},
}

// decoders runs each payload decoder by name; the fuzz test and the
// truncation test use it to treat every codec alike.
var decoders = []struct {
	name  string
	cases []payloadCase
	parse func([]byte) (any, error)
	// encode re-encodes a decoded value.
	encode func(any) ([]byte, error)
	// exact says re-encoding gives back the very bytes decoded. Heads only
	// promise the same fields: names come out canonical and the order of
	// different names is free.
	exact bool
	// prefixesFail says every proper prefix of a valid payload is refused.
	prefixesFail bool
	// typ is the frame type the payload travels in, for fuzz seeds.
	typ Type
}{
	{
		name: "RequestHead", cases: requestHeadCases, typ: TypeHTTPRequest, prefixesFail: true,
		parse:  func(p []byte) (any, error) { return ParseRequestHead(p) },
		encode: func(v any) ([]byte, error) { h := v.(RequestHead); return AppendRequestHead(nil, &h) },
	},
	{
		name: "ResponseHead", cases: responseHeadCases, typ: TypeHTTPResponse, prefixesFail: true,
		parse:  func(p []byte) (any, error) { return ParseResponseHead(p) },
		encode: func(v any) ([]byte, error) { h := v.(ResponseHead); return AppendResponseHead(nil, &h) },
	},
	{
		name: "Challenge", cases: challengeCases, typ: TypeChallenge, exact: true, prefixesFail: true,
		parse:  func(p []byte) (any, error) { return ParseChallenge(p) },
		encode: func(v any) ([]byte, error) { c := v.(Challenge); return c.Append(nil) },
	},
	{
		name: "RegistrationRequest", cases: registrationRequestCases, typ: TypeRegistrationRequest, exact: true, prefixesFail: true,
		parse:  func(p []byte) (any, error) { return ParseRegistrationRequest(p) },
		encode: func(v any) ([]byte, error) { q := v.(RegistrationRequest); return q.Append(nil), nil },
	},
	{
		name: "RegistrationResponse", cases: registrationResponseCases, typ: TypeRegistrationResponse, exact: true, prefixesFail: true,
		parse:  func(p []byte) (any, error) { return ParseRegistrationResponse(p) },
		encode: func(v any) ([]byte, error) { s := v.(RegistrationResponse); return s.Append(nil) },
	},
	{
		name: "Status", cases: statusCases, typ: TypeError, exact: true,
		parse:  func(p []byte) (any, error) { return ParseStatus(p) },
		encode: func(v any) ([]byte, error) { s := v.(Status); return s.Append(nil), nil },
	},
}
