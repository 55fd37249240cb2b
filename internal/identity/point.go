package identity

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"filippo.io/edwards25519"
)

// checkKey refuses a public key that is not the canonical encoding of a
// point, or that is a point of small order. SetBytes accepts some
// non-canonical encodings (y ≥ p, or x = 0 with the sign bit set), so the
// point must also encode back to the same bytes.
func checkKey(pub []byte) error {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return fmt.Errorf("%w: %s is not a curve point", ErrBadKey, hex.EncodeToString(pub))
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return fmt.Errorf("%w: %s is not a canonical encoding", ErrBadKey, hex.EncodeToString(pub))
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: %s has small order", ErrBadKey, hex.EncodeToString(pub))
	}
	return nil
}
