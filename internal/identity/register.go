package identity

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"time"

	"keyhole/messages"
)

// MaxSkew is how far a registration's timestamp may be from the verifier's
// clock, in the past or in the future.
const MaxSkew = 60 * time.Second

// Register answers the challenge ch with a registration signed by priv for
// the client process instance at time now. priv must be a valid Ed25519
// private key (ed25519.Sign panics otherwise).
func Register(priv ed25519.PrivateKey, ch messages.Challenge, instance [messages.InstanceSize]byte, now time.Time) messages.RegistrationRequest {
	req := messages.RegistrationRequest{Instance: instance, Timestamp: now.UnixMilli()}
	copy(req.PublicKey[:], priv.Public().(ed25519.PublicKey))
	sig := ed25519.Sign(priv, messages.SignatureInput(ch.Domain, ch.Nonce, &req))
	copy(req.Signature[:], sig)
	return req
}

// Verify checks a registration received on a link where the caller sent a
// Challenge with domain and nonce, and returns the label of its key. The
// nonce must be the fresh one sent on this link: that is what makes a
// registration captured elsewhere fail. Errors wrap ErrBadKey, ErrStale or
// ErrBadSignature.
func Verify(req *messages.RegistrationRequest, domain string, nonce [messages.NonceSize]byte, now time.Time) (string, error) {
	if len(domain) > math.MaxUint16 {
		return "", fmt.Errorf("verify registration: domain of %d bytes does not fit the signature input", len(domain))
	}
	if err := checkKey(req.PublicKey[:]); err != nil {
		return "", fmt.Errorf("verify registration: %w", err)
	}
	if err := checkTime(req.Timestamp, now); err != nil {
		return "", fmt.Errorf("verify registration: %w", err)
	}
	pub := ed25519.PublicKey(req.PublicKey[:])
	if !ed25519.Verify(pub, messages.SignatureInput(domain, nonce, req), req.Signature[:]) {
		return "", fmt.Errorf("verify registration: %w for key %s on domain %q", ErrBadSignature, Label(pub), domain)
	}
	return Label(pub), nil
}

// checkTime refuses a timestamp (Unix ms) more than MaxSkew from now. The
// differences are printed as uint64 so that no int64 timestamp overflows.
func checkTime(ts int64, now time.Time) error {
	ms, skew := now.UnixMilli(), MaxSkew.Milliseconds()
	switch {
	case ts < ms-skew:
		return fmt.Errorf("%w: %d ms old, limit %v", ErrStale, uint64(ms)-uint64(ts), MaxSkew)
	case ts > ms+skew:
		return fmt.Errorf("%w: %d ms in the future, limit %v", ErrStale, uint64(ts)-uint64(ms), MaxSkew)
	}
	return nil
}
