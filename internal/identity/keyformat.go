package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// encodeKey returns the key file contents for priv: a PEM "PRIVATE KEY"
// block holding PKCS #8 (RFC 8410), which stores the 32-byte seed.
func encodeKey(priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic("identity: marshal ed25519 key: " + err.Error()) // cannot fail for a valid key
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
}

// decodeKey parses key file contents: one PEM "PRIVATE KEY" block with an
// Ed25519 PKCS #8 key and nothing else but white space.
func decodeKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: over %d bytes", ErrKeyFileFormat, maxKeyFile)
	}
	block, rest := pem.Decode(b)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFileFormat)
	case block.Type != pemType:
		return nil, fmt.Errorf("%w: PEM block %q, want %q", ErrKeyFileFormat, block.Type, pemType)
	case len(block.Headers) != 0:
		return nil, fmt.Errorf("%w: PEM headers (encrypted keys are not supported)", ErrKeyFileFormat)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fmt.Errorf("%w: data after the PEM block", ErrKeyFileFormat)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFileFormat, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T, want an Ed25519 key", ErrKeyFileFormat, k)
	}
	return priv, nil
}
