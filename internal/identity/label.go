package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
)

// LabelLen is the length of a label: 256 bits in base32.
const LabelLen = 52

const labelAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

var labelEncoding = base32.NewEncoding(labelAlphabet).WithPadding(base32.NoPadding)

// JWK returns the RFC 7638 canonical JSON of pub as an RFC 8037 OKP key:
// the required members in lexicographic order with no whitespace.
func JWK(pub ed25519.PublicKey) string {
	return `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of pub: the hash of
// its canonical JWK.
func Thumbprint(pub ed25519.PublicKey) [sha256.Size]byte {
	return sha256.Sum256([]byte(JWK(pub)))
}

// Label returns the name of pub: its thumbprint in lowercase base32
// without padding, LabelLen characters of a-z2-7.
func Label(pub ed25519.PublicKey) string {
	t := Thumbprint(pub)
	return labelEncoding.EncodeToString(t[:])
}

// ValidLabel reports whether s could be a label: LabelLen characters of
// a-z2-7 whose last character carries no bits beyond the 256th. It does not
// say whether any key has that label.
func ValidLabel(s string) bool {
	if len(s) != LabelLen {
		return false
	}
	var v byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			v = c - 'a'
		case '2' <= c && c <= '7':
			v = c - '2' + 26
		default:
			return false
		}
	}
	// 52 characters hold 260 bits; the last one's low 4 bits are unused.
	return v&0x0f == 0
}
