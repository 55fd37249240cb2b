package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// The known-answer vector published in PROTOCOL.md: the key of RFC 8037
// Appendix A, its JWK and thumbprint (RFC 8037 A.3), and its label, which
// was computed independently of this package (Python's hashlib and base64).
const (
	vectorSeed       = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A" // base64url
	vectorX          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" // base64url
	vectorJWK        = `{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	vectorThumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" // base64url
	vectorLabel      = "sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq"

	// vectorKeyFile is the seed as a key file, written by Python's
	// cryptography package (PKCS #8, PEM).
	vectorKeyFile = "-----BEGIN PRIVATE KEY-----\n" +
		"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n" +
		"-----END PRIVATE KEY-----\n"
)

// vectorKey returns the private key of the vector.
func vectorKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	seed, err := base64.RawURLEncoding.DecodeString(vectorSeed)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func TestProtocolVector(t *testing.T) {
	priv := vectorKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	thumb := Thumbprint(pub)
	for _, c := range []struct{ name, got, want string }{
		{"public key", base64.RawURLEncoding.EncodeToString(pub), vectorX},
		{"JWK", JWK(pub), vectorJWK},
		{"thumbprint", base64.RawURLEncoding.EncodeToString(thumb[:]), vectorThumbprint},
		{"label", Label(pub), vectorLabel},
		{"key file", string(encodeKey(priv)), vectorKeyFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %s, want %s", c.got, c.want)
			}
		})
	}
	t.Run("label is valid", func(t *testing.T) {
		if !ValidLabel(vectorLabel) {
			t.Errorf("ValidLabel(%q) = false, want true", vectorLabel)
		}
	})
}

func TestValidLabel(t *testing.T) {
	body := vectorLabel[:LabelLen-1]
	cases := []struct {
		name string
		s    string
		want bool
	}{
		{"vector", vectorLabel, true},
		{"last char a", body + "a", true},
		{"last char q", body + "q", true},
		{"unused bits set (b)", body + "b", false},
		{"unused bits set (7)", body + "7", false},
		{"empty", "", false},
		{"one short", body, false},
		{"one long", vectorLabel + "a", false},
		{"upper case", strings.ToUpper(vectorLabel), false},
		{"digit 0", "0" + vectorLabel[1:], false},
		{"digit 1", "1" + vectorLabel[1:], false},
		{"digit 8", "8" + vectorLabel[1:], false},
		{"padding", body + "=", false},
		{"hyphen", "-" + vectorLabel[1:], false},
		{"non-ASCII", "é" + vectorLabel[2:], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ValidLabel(c.s); got != c.want {
				t.Errorf("ValidLabel(%q): got %v, want %v", c.s, got, c.want)
			}
		})
	}
	t.Run("random keys", func(t *testing.T) {
		for range 1000 {
			pub, _, err := ed25519.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			if l := Label(pub); !ValidLabel(l) {
				t.Fatalf("ValidLabel(Label(%x)) = false for %q, want true", pub, l)
			}
		}
	})
}
