package tunnel

import (
	"crypto/ed25519"

	"keyhole/internal/identity"
)

// LoadKey reads the key file at path, the format keyhole's client
// writes; if there is none it creates one with mode 0600 and reports
// created. The same key always gets the same hostname.
func LoadKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	return identity.LoadOrCreate(path)
}

// DefaultKeyPath is the client's key file: keyhole/client.key in the
// user's config directory.
func DefaultKeyPath() (string, error) { return identity.DefaultKeyPath() }

// Label returns the label of a key: the first part of its hostname.
func Label(key ed25519.PrivateKey) string {
	return identity.Label(key.Public().(ed25519.PublicKey))
}
