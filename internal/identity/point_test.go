package identity

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"keyhole/messages"
)

// smallOrder holds the canonical encodings of the 8 points of small order:
// the identity, the point of order 2, two of order 4 and four of order 8.
var smallOrder = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
}

// TestSmallOrderList checks smallOrder by computing the torsion subgroup
// as the multiples of one point of order 8, without MultByCofactor.
func TestSmallOrderList(t *testing.T) {
	g, err := new(edwards25519.Point).SetBytes(mustHex(t, smallOrder[4]))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	p := edwards25519.NewIdentityPoint()
	for k := range 8 {
		if k > 0 && p.Equal(edwards25519.NewIdentityPoint()) == 1 {
			t.Fatalf("got %d·g = identity, want order 8", k)
		}
		got = append(got, hex.EncodeToString(p.Bytes()))
		p.Add(p, g)
	}
	if p.Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Fatalf("got 8·g = %x, want identity", p.Bytes())
	}
	want := slices.Clone(smallOrder)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got multiples %v, want %v", got, want)
	}
}

func TestVerifyRefusesSmallOrder(t *testing.T) {
	for i, enc := range smallOrder {
		t.Run(enc[:8]+"…"+enc[62:], func(t *testing.T) {
			req := messages.RegistrationRequest{Timestamp: time.Now().UnixMilli()}
			copy(req.PublicKey[:], mustHex(t, enc))
			if i == 0 {
				// R = identity, S = 0 satisfies [S]B = R + [k]A for
				// A = identity and any message.
				req.Signature[0] = 1
				msg := messages.SignatureInput("tunnel.example.com", [32]byte{}, &req)
				if !ed25519.Verify(req.PublicKey[:], msg, req.Signature[:]) {
					t.Log("crypto/ed25519 now refuses the identity-key forgery itself")
				}
			}
			wantBadKey(t, &req)
		})
	}
}

func TestVerifyRefusesNonCanonical(t *testing.T) {
	cases := []struct {
		name string
		enc  string
		// decodes says filippo.io/edwards25519 SetBytes accepts it, so
		// only the re-encoding or small-order check can refuse it.
		decodes bool
	}{
		{"y = p, order 4", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
		{"y = p+1, identity", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
		{"y = p+3, large order", "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", true},
		{"y = p+18 and sign bit, large order", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", true},
		{"identity with sign bit", "0100000000000000000000000000000000000000000000000000000000000080", true},
		{"order 2 with sign bit", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", true},
		{"y = 2, not on the curve", "0200000000000000000000000000000000000000000000000000000000000000", false},
		{"y = p+2, not on the curve", "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustHex(t, c.enc)
			if _, err := new(edwards25519.Point).SetBytes(b); (err == nil) != c.decodes {
				t.Fatalf("SetBytes: got error %v, want decodes = %v", err, c.decodes)
			}
			req := messages.RegistrationRequest{Timestamp: time.Now().UnixMilli()}
			copy(req.PublicKey[:], b)
			wantBadKey(t, &req)
		})
	}
	t.Run("every y ≥ p", func(t *testing.T) {
		p := mustHex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
		for i := range byte(19) {
			for _, sign := range []byte{0, 0x80} {
				req := messages.RegistrationRequest{Timestamp: time.Now().UnixMilli()}
				copy(req.PublicKey[:], p)
				req.PublicKey[0] += i
				req.PublicKey[31] |= sign
				wantBadKey(t, &req)
			}
		}
	})
}

// wantBadKey checks that Verify refuses req with ErrBadKey.
func wantBadKey(t *testing.T, req *messages.RegistrationRequest) {
	t.Helper()
	label, err := Verify(req, "tunnel.example.com", [32]byte{}, time.Now())
	if !errors.Is(err, ErrBadKey) {
		t.Errorf("Verify(%x): got label %q, error %v; want %v", req.PublicKey, label, err, ErrBadKey)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
