package messages

import (
	"bytes"
	"reflect"
	"testing"
)

// TestWireConstants pins every number PROTOCOL.md publishes: changing one
// breaks interoperability, and type numbers are never reused.
func TestWireConstants(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"Version", Version, 1},
		{"HeaderSize", HeaderSize, 20},
		{"MaxChunk", MaxChunk, 65536},
		{"MaxPayload", MaxPayload, 69632},
		{"MaxFrame", MaxFrame, 69652},
		{"NonceSize", NonceSize, 32},
		{"PublicKeySize", PublicKeySize, 32},
		{"InstanceSize", InstanceSize, 16},
		{"SignatureSize", SignatureSize, 64},
		{"TypeChallenge", int(TypeChallenge), 1},
		{"TypeRegistrationRequest", int(TypeRegistrationRequest), 2},
		{"TypeRegistrationResponse", int(TypeRegistrationResponse), 3},
		{"TypeHTTPRequest", int(TypeHTTPRequest), 4},
		{"TypeHTTPResponse", int(TypeHTTPResponse), 5},
		{"TypeData", int(TypeData), 6},
		{"TypeWSRequest", int(TypeWSRequest), 7},
		{"TypeWSResponse", int(TypeWSResponse), 8},
		{"TypeWSMessage", int(TypeWSMessage), 9},
		{"TypeWSTeardown", int(TypeWSTeardown), 10},
		{"TypePing", int(TypePing), 11},
		{"TypeGoAway", int(TypeGoAway), 12},
		{"TypeError", int(TypeError), 13},
		{"TypeCredit", int(TypeCredit), 14},
		{"FlagEnd", int(FlagEnd), 1},
		{"FlagText", int(FlagText), 2},
		{"FlagPong", int(FlagPong), 4},
		{"len(SignatureContext)", len(SignatureContext), 21},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		in   Type
		want string
	}{
		{0, "Type(0)"},
		{TypeChallenge, "Challenge"},
		{TypeRegistrationRequest, "RegistrationRequest"},
		{TypeRegistrationResponse, "RegistrationResponse"},
		{TypeHTTPRequest, "HTTPRequest"},
		{TypeHTTPResponse, "HTTPResponse"},
		{TypeData, "Data"},
		{TypeWSRequest, "WSRequest"},
		{TypeWSResponse, "WSResponse"},
		{TypeWSMessage, "WSMessage"},
		{TypeWSTeardown, "WSTeardown"},
		{TypePing, "Ping"},
		{TypeGoAway, "GoAway"},
		{TypeError, "Error"},
		{TypeCredit, "Credit"},
		{15, "Type(15)"},
		{255, "Type(255)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHeaderLayout(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		flags Flags
		id    ID
		want  []byte
	}{
		{
			name: "data end", typ: TypeData, flags: FlagEnd, id: testID,
			want: []byte{1, 6, 0, 1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
		},
		{
			name: "pong on the link", typ: TypePing, flags: FlagPong,
			want: []byte{1, 11, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		},
		{
			name: "text end", typ: TypeWSMessage, flags: FlagText | FlagEnd, id: ID{15: 1},
			want: []byte{1, 9, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		},
		{
			name: "flags big-endian", typ: 200, flags: 0xabcd, id: ID{0: 0xff},
			want: []byte{1, 200, 0xab, 0xcd, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AppendHeader(nil, tt.typ, tt.flags, tt.id); !bytes.Equal(got, tt.want) {
				t.Fatalf("AppendHeader: got % x, want % x", got, tt.want)
			}
			if got := AppendHeader([]byte("pre"), tt.typ, tt.flags, tt.id); !bytes.Equal(got, append([]byte("pre"), tt.want...)) {
				t.Fatalf("AppendHeader after a prefix: got % x, want % x", got, tt.want)
			}
			b := bytes.Repeat([]byte{0x5a}, HeaderSize+3)
			PutHeader(b, tt.typ, tt.flags, tt.id)
			if want := append(bytes.Clone(tt.want), 0x5a, 0x5a, 0x5a); !bytes.Equal(b, want) {
				t.Fatalf("PutHeader: got % x, want % x", b, want)
			}
			f := Frame{Type: tt.typ, Flags: tt.flags, ID: tt.id, Payload: []byte("xyz")}
			if got, want := f.Append(nil), append(bytes.Clone(tt.want), "xyz"...); !bytes.Equal(got, want) {
				t.Fatalf("Frame.Append: got % x, want % x", got, want)
			}
		})
	}
}

func TestPutHeaderShortBufferPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("got no panic, want one for a %d-byte buffer", HeaderSize-1)
		}
	}()
	PutHeader(make([]byte, HeaderSize-1), TypeData, 0, testID)
}

func TestParse(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5}, MaxPayload)
	withVersion := func(v byte, b []byte) []byte {
		b = bytes.Clone(b)
		b[0] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want Frame
		err  error
	}{
		{name: "data", in: frame(TypeData, FlagEnd, testID, []byte("body")), want: Frame{Type: TypeData, Flags: FlagEnd, ID: testID, Payload: []byte("body")}},
		{name: "every byte value kept", in: frame(TypeData, 0, testID, binaryBytes), want: Frame{Type: TypeData, ID: testID, Payload: binaryBytes}},
		{name: "empty payload", in: frame(TypeData, FlagEnd, testID, nil), want: Frame{Type: TypeData, Flags: FlagEnd, ID: testID, Payload: []byte{}}},
		{name: "ping on the link", in: frame(TypePing, 0, ID{}, []byte{1, 2, 3, 4, 5, 6, 7, 8}), want: Frame{Type: TypePing, Payload: []byte{1, 2, 3, 4, 5, 6, 7, 8}}},
		{name: "largest data", in: frame(TypeData, 0, testID, big[:MaxChunk]), want: Frame{Type: TypeData, ID: testID, Payload: big[:MaxChunk]}},
		{name: "largest ws message", in: frame(TypeWSMessage, FlagText, testID, big[:MaxChunk]), want: Frame{Type: TypeWSMessage, Flags: FlagText, ID: testID, Payload: big[:MaxChunk]}},
		{name: "largest head", in: frame(TypeHTTPRequest, 0, testID, big), want: Frame{Type: TypeHTTPRequest, ID: testID, Payload: big}},
		{name: "unknown type kept", in: frame(200, 0, testID, []byte{9}), want: Frame{Type: 200, ID: testID, Payload: []byte{9}}},
		{name: "type 0 kept", in: frame(0, 0, ID{}, nil), want: Frame{Payload: []byte{}}},
		{name: "credit kept", in: frame(TypeCredit, 0, testID, []byte{0, 1, 0, 0}), want: Frame{Type: TypeCredit, ID: testID, Payload: []byte{0, 1, 0, 0}}},
		{name: "unknown flags kept", in: frame(TypeData, 0xfff8|FlagEnd, testID, nil), want: Frame{Type: TypeData, Flags: 0xfff8 | FlagEnd, ID: testID, Payload: []byte{}}},
		{name: "empty", in: nil, err: ErrMalformed},
		{name: "one byte short of a header", in: frame(TypeData, 0, testID, nil)[:HeaderSize-1], err: ErrMalformed},
		{name: "version 0", in: withVersion(0, frame(TypeData, 0, testID, nil)), err: ErrVersion},
		{name: "version 2", in: withVersion(2, frame(TypeData, 0, testID, nil)), err: ErrVersion},
		{name: "version 255", in: withVersion(255, frame(TypePing, 0, ID{}, nil)), err: ErrVersion},
		{name: "data over MaxChunk", in: frame(TypeData, 0, testID, big[:MaxChunk+1]), err: ErrTooLarge},
		{name: "ws message over MaxChunk", in: frame(TypeWSMessage, 0, testID, big[:MaxChunk+1]), err: ErrTooLarge},
		{name: "frame over MaxFrame", in: frame(TypeHTTPRequest, 0, testID, append(bytes.Clone(big), 0)), err: ErrTooLarge},
		{name: "oversize checked before version", in: withVersion(9, frame(TypeError, 0, testID, append(bytes.Clone(big), 0))), err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			checkErr(t, err, tt.err)
			if tt.err != nil {
				if !reflect.DeepEqual(got, Frame{}) {
					t.Fatalf("got %+v with the error, want the zero Frame", got)
				}
				return
			}
			if got.Type != tt.want.Type || got.Flags != tt.want.Flags || got.ID != tt.want.ID || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Fatalf("got %v %#x %v %d bytes, want %v %#x %v %d bytes",
					got.Type, got.Flags, got.ID, len(got.Payload), tt.want.Type, tt.want.Flags, tt.want.ID, len(tt.want.Payload))
			}
			if got.End() != (tt.want.Flags&FlagEnd != 0) {
				t.Fatalf("End(): got %v, want %v", got.End(), !got.End())
			}
			if re := got.Append(nil); !bytes.Equal(re, tt.in) {
				t.Fatalf("re-encoded: got % x, want % x", re, tt.in)
			}
		})
	}
}

// TestParseShortHeader cuts a frame at every offset inside its header.
func TestParseShortHeader(t *testing.T) {
	full := frame(TypeHTTPResponse, FlagEnd, testID, nil)
	for i := 0; i < HeaderSize; i++ {
		if _, err := Parse(bytes.Clone(full[:i])); err == nil {
			t.Fatalf("%d bytes: got no error, want one wrapping %v", i, ErrMalformed)
		} else {
			checkErr(t, err, ErrMalformed)
		}
	}
}

// TestParseAliases checks the documented zero-copy contract: Payload is
// the buffer's own bytes.
func TestParseAliases(t *testing.T) {
	b := frame(TypeData, 0, testID, []byte("abc"))
	f, err := Parse(b)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	b[HeaderSize] = 'X'
	if string(f.Payload) != "Xbc" {
		t.Fatalf("got payload %q after writing the buffer, want %q", f.Payload, "Xbc")
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for typ := Type(0); typ <= TypeCredit+1; typ++ {
		for _, flags := range []Flags{0, FlagEnd, FlagText, FlagText | FlagEnd, FlagPong, 0xffff} {
			t.Run(typ.String(), func(t *testing.T) {
				id := NewID()
				payload := binaryBytes[:int(typ)*7]
				got, err := Parse(Frame{Type: typ, Flags: flags, ID: id, Payload: payload}.Append(nil))
				if err != nil {
					t.Fatalf("flags %#x: got error %v, want none", flags, err)
				}
				if got.Type != typ || got.Flags != flags || got.ID != id || !bytes.Equal(got.Payload, payload) {
					t.Fatalf("got %v %#x %v % x, want %v %#x %v % x", got.Type, got.Flags, got.ID, got.Payload, typ, flags, id, payload)
				}
			})
		}
	}
}

func TestID(t *testing.T) {
	if !(ID{}).IsZero() {
		t.Fatalf("ID{}.IsZero(): got false, want true")
	}
	if testID.IsZero() {
		t.Fatalf("IsZero of %v: got true, want false", testID)
	}
	if got, want := testID.String(), "00112233445566778899aabbccddeeff"; got != want {
		t.Fatalf("String: got %q, want %q", got, want)
	}
	seen := make(map[ID]bool)
	for i := 0; i < 1000; i++ {
		id := NewID()
		if id.IsZero() || seen[id] {
			t.Fatalf("NewID #%d: got %v, want a fresh non-zero id", i, id)
		}
		seen[id] = true
	}
}
