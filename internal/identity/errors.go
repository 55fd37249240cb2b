package identity

import "errors"

var (
	// ErrBadKey means a public key is not the canonical encoding of a
	// curve point, or is a point of small order.
	ErrBadKey = errors.New("bad public key")

	// ErrBadSignature means a registration's signature does not verify
	// for the key, the proxy's domain and the nonce sent on this link.
	ErrBadSignature = errors.New("bad registration signature")

	// ErrStale means a registration's timestamp is more than MaxSkew
	// before or after the verifier's clock.
	ErrStale = errors.New("registration timestamp out of range")

	// ErrKeyFileMode means a key file may be read or written by group
	// or others.
	ErrKeyFileMode = errors.New("key file permissions too open")

	// ErrKeyFileFormat means a key file does not hold an Ed25519 key in
	// the expected format.
	ErrKeyFileFormat = errors.New("malformed key file")
)
