package messages

import (
	"bytes"
	"reflect"
	"testing"
)

// TestDecode runs every payload decoder on its hand-built cases, then checks
// that each value decoded re-encodes to something that decodes the same
// (and, for the fixed-layout payloads, to the very same bytes).
func TestDecode(t *testing.T) {
	for _, d := range decoders {
		for _, c := range d.cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				got, err := d.parse(c.in)
				checkErr(t, err, c.err)
				if c.err != nil {
					return
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %+v, want %+v", got, c.want)
				}
				enc, err := d.encode(got)
				if err != nil {
					t.Fatalf("re-encoding: got error %v, want none", err)
				}
				if d.exact && !bytes.Equal(enc, c.in) {
					t.Fatalf("re-encoded: got %x, want %x", enc, c.in)
				}
				if len(enc) != len(c.in) {
					t.Fatalf("re-encoded: got %d bytes, want %d", len(enc), len(c.in))
				}
				again, err := d.parse(enc)
				if err != nil {
					t.Fatalf("decoding the re-encoding: got error %v, want none", err)
				}
				if !reflect.DeepEqual(again, got) {
					t.Fatalf("after a round trip got %+v, want %+v", again, got)
				}
			})
		}
	}
}

// TestTruncated cuts every valid payload at every byte offset: each proper
// prefix must be refused as malformed (a Status only below its 2-byte code,
// since its text runs to the end of the payload; a revision 2
// RegistrationResponse also at the end of its revision 1 fields, which
// are complete).
func TestTruncated(t *testing.T) {
	for _, d := range decoders {
		for _, c := range d.cases {
			if c.err != nil {
				continue
			}
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				for i := 0; i < len(c.in); i++ {
					if !d.prefixesFail && i >= 2 {
						break
					}
					if r, ok := c.want.(RegistrationResponse); ok && r.Revision >= 2 && i == 4+len(r.Hostname)+len(r.URL) {
						continue
					}
					// A copy of exactly i bytes, so reading past it is caught.
					in := bytes.Clone(c.in[:i])
					if _, err := d.parse(in); err == nil {
						t.Fatalf("first %d of %d bytes: got no error, want one wrapping %v", i, len(c.in), ErrMalformed)
					} else {
						checkErr(t, err, ErrMalformed)
					}
				}
			})
		}
	}
}

// TestTrailingBytes appends bytes to every valid self-delimiting payload:
// each must be refused.
func TestTrailingBytes(t *testing.T) {
	for _, d := range decoders {
		if !d.prefixesFail {
			continue
		}
		for _, c := range d.cases {
			if c.err != nil {
				continue
			}
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				for _, extra := range [][]byte{{0}, {0, 0}, {0xff, 0xff, 0xff, 0xff}} {
					_, err := d.parse(append(bytes.Clone(c.in), extra...))
					checkErr(t, err, ErrMalformed)
				}
			})
		}
	}
}

// TestDecodeCopies checks decoded values do not alias the payload: a
// receiver may reuse its read buffer as soon as a head is decoded.
func TestDecodeCopies(t *testing.T) {
	for _, d := range decoders {
		for _, c := range d.cases {
			if c.err != nil {
				continue
			}
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				in := bytes.Clone(c.in)
				got, err := d.parse(in)
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				for i := range in {
					in[i] ^= 0xff
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("after overwriting the payload got %+v, want %+v", got, c.want)
				}
			})
		}
	}
}
