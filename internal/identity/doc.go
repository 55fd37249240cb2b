// Package identity names keyhole clients by their Ed25519 keys and proves
// that a client holds the key it claims.
//
// # Names
//
// A client's label is the RFC 7638 JWK SHA-256 thumbprint of its public key,
// written as an RFC 8037 OKP key
//
//	{"crv":"Ed25519","kty":"OKP","x":"<public key, base64url, no padding>"}
//
// and encoded as lowercase RFC 4648 base32 without padding: 52 characters of
// a-z2-7, short enough for a DNS label. The same key has the same label on
// every proxy node, with no name database. See Label and ValidLabel.
//
// # Registration
//
// On a new link the proxy sends a messages.Challenge holding its domain and a
// fresh random nonce. The client answers with Register, which signs
// messages.SignatureInput: a context string that keeps these signatures apart
// from any other use of the key, the protocol version, the proxy's domain,
// the nonce, a timestamp, the public key and the client's instance id. The
// proxy checks the answer with Verify, passing the domain and the nonce it
// sent, and takes the label from the verified key and from nothing else.
//
// Replay is prevented by the nonce, not by the timestamp: the proxy draws a
// new nonce for every link, so a registration captured on one link carries a
// signature over another nonce and fails on any other link. The timestamp
// only bounds how long a request may sit in flight (MaxSkew either way). A
// signature made for another proxy's domain fails in the same way.
//
// Verify refuses public keys that are not the canonical encoding of a curve
// point and keys of small order, whose signatures prove nothing.
//
// # Key files
//
// LoadOrCreate keeps the client's private key in a file, by default
// DefaultKeyPath. The file is a PEM block of type "PRIVATE KEY" holding the
// key in PKCS #8 form (RFC 8410), the same form `openssl genpkey -algorithm
// ed25519` writes, so a key can be made or inspected with standard tools.
// The file must not be readable or writable by group or others.
package identity
