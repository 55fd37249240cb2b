package messages

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and, whatever the header said,
// to every payload decoder on the bytes after the header. Nothing may panic,
// every error must wrap a sentinel, and whatever decodes must encode again
// to something that decodes the same (for frames and fixed-layout payloads,
// to the very same bytes).
//
// Seeds are every table case, as a payload in a frame of its type, plus the
// frame cases and the known-answer frames of PROTOCOL.md.
func FuzzParse(f *testing.F) {
	for _, d := range decoders {
		for _, c := range d.cases {
			f.Add(frame(d.typ, 0, testID, c.in))
		}
	}
	for _, s := range []string{vectorChallenge, vectorRegistration} {
		b, _ := hexBytes(s)
		f.Add(b)
	}
	f.Add(frame(TypeData, FlagEnd, testID, binaryBytes))
	f.Add(frame(TypeWSMessage, FlagText|FlagEnd, testID, []byte("hello")))
	f.Add(frame(TypePing, FlagPong, ID{}, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add(frame(TypeGoAway, 0, ID{}, nil))
	f.Add(frame(TypeCredit, 0, testID, []byte{0, 1, 0, 0}))
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add(append([]byte{2}, make([]byte, HeaderSize-1)...))

	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("Parse: got error %v, want one wrapping a sentinel", err)
			}
		} else {
			checkFrame(t, b, fr)
		}
		if len(b) >= HeaderSize {
			checkPayloads(t, b[HeaderSize:])
		}
	})
}

func checkFrame(t *testing.T, b []byte, fr Frame) {
	if len(b) > MaxFrame || len(b) < HeaderSize {
		t.Fatalf("Parse accepted a %d-byte frame", len(b))
	}
	if (fr.Type == TypeData || fr.Type == TypeWSMessage) && len(fr.Payload) > MaxChunk {
		t.Fatalf("Parse accepted a %d-byte %v", len(fr.Payload), fr.Type)
	}
	enc := fr.Append(nil)
	if !bytes.Equal(enc, b) {
		t.Fatalf("re-encoded frame: got % x, want % x", enc, b)
	}
	buf := make([]byte, HeaderSize+len(fr.Payload))
	PutHeader(buf, fr.Type, fr.Flags, fr.ID)
	copy(buf[HeaderSize:], fr.Payload)
	if !bytes.Equal(buf, b) {
		t.Fatalf("PutHeader frame: got % x, want % x", buf, b)
	}
	again, err := Parse(enc)
	if err != nil {
		t.Fatalf("re-parsing: got error %v, want none", err)
	}
	if !reflect.DeepEqual(again, fr) {
		t.Fatalf("re-parsed: got %+v, want %+v", again, fr)
	}
}

func checkPayloads(t *testing.T, p []byte) {
	for _, d := range decoders {
		v, err := d.parse(p)
		if err != nil {
			if !knownErr(err) {
				t.Fatalf("%s: got error %v, want one wrapping a sentinel", d.name, err)
			}
			continue
		}
		checkCanonical(t, d.name, v)
		enc, err := d.encode(v)
		if err != nil {
			if len(p) > MaxPayload && knownErr(err) {
				continue // decoders take any length; encoders hold to MaxPayload
			}
			t.Fatalf("%s: re-encoding %+v: got error %v, want none", d.name, v, err)
		}
		if len(enc) != len(p) || d.exact && !bytes.Equal(enc, p) {
			t.Fatalf("%s: re-encoded: got % x, want % x", d.name, enc, p)
		}
		again, err := d.parse(enc)
		if err != nil {
			t.Fatalf("%s: decoding the re-encoding: got error %v, want none", d.name, err)
		}
		if !reflect.DeepEqual(again, v) {
			t.Fatalf("%s: after a round trip got %+v, want %+v", d.name, again, v)
		}
	}
}

// checkCanonical checks what a decoded head promises: canonical, valid
// names and values, and no empty value lists.
func checkCanonical(t *testing.T, name string, v any) {
	var h http.Header
	switch v := v.(type) {
	case RequestHead:
		h = v.Header
	case ResponseHead:
		h = v.Header
	default:
		return
	}
	if h == nil {
		t.Fatalf("%s: got a nil Header, want a map", name)
	}
	for k, vs := range h {
		if k != http.CanonicalHeaderKey(k) || !validName(k) {
			t.Fatalf("%s: got header name %q, want canonical %q", name, k, http.CanonicalHeaderKey(k))
		}
		if len(vs) == 0 {
			t.Fatalf("%s: got no values for %q, want at least one", name, k)
		}
		for _, s := range vs {
			if !validValue(s) {
				t.Fatalf("%s: got value %q for %q, want no CR, LF or NUL", name, s, k)
			}
		}
	}
}
