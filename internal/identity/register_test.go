package identity

import (
	"crypto/ed25519"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"keyhole/messages"
)

func TestRegister(t *testing.T) {
	priv := vectorKey(t)
	ch := messages.Challenge{Nonce: [32]byte{1, 2, 3}, Domain: "tunnel.example.com"}
	inst := [16]byte{9, 8, 7}
	now := time.UnixMilli(1_700_000_000_123)
	req := Register(priv, ch, inst, now)

	if got, want := ed25519.PublicKey(req.PublicKey[:]), priv.Public().(ed25519.PublicKey); !got.Equal(want) {
		t.Errorf("public key: got %x, want %x", got, want)
	}
	if req.Instance != inst {
		t.Errorf("instance: got %x, want %x", req.Instance, inst)
	}
	if got, want := req.Timestamp, int64(1_700_000_000_123); got != want {
		t.Errorf("timestamp: got %d, want %d", got, want)
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), messages.SignatureInput(ch.Domain, ch.Nonce, &req), req.Signature[:]) {
		t.Errorf("signature %x does not verify over SignatureInput", req.Signature)
	}

	// Through the wire format and back, as the proxy receives it.
	got, err := messages.ParseRegistrationRequest(req.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	label, err := Verify(&got, ch.Domain, ch.Nonce, now.Add(time.Second))
	if err != nil || label != vectorLabel {
		t.Errorf("Verify after round trip: got %q, %v; want %q, nil", label, err, vectorLabel)
	}
}

func TestVerify(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	const domain = "tunnel.example.com"
	nonce := [32]byte{0xaa, 0xbb}
	now := time.Now()
	ms := time.Millisecond

	cases := []struct {
		name     string
		key      ed25519.PrivateKey // signer; nil means priv
		domain   string             // signed for; "" means domain
		nonce    *[32]byte          // signed for; nil means nonce
		signedAt time.Duration      // relative to now
		mutate   func(*messages.RegistrationRequest)
		want     error
	}{
		{name: "random valid key"},
		{name: "vector key", key: vectorKey(t)},
		{name: "60 s old", signedAt: -MaxSkew},
		{name: "60 s ahead", signedAt: MaxSkew},
		{name: "60.001 s old", signedAt: -MaxSkew - ms, want: ErrStale},
		{name: "60.001 s ahead", signedAt: MaxSkew + ms, want: ErrStale},
		{name: "oldest timestamp", mutate: func(q *messages.RegistrationRequest) { q.Timestamp = math.MinInt64 }, want: ErrStale},
		{name: "newest timestamp", mutate: func(q *messages.RegistrationRequest) { q.Timestamp = math.MaxInt64 }, want: ErrStale},
		{name: "forged signature", mutate: func(q *messages.RegistrationRequest) { q.Signature[10] ^= 1 }, want: ErrBadSignature},
		{name: "zero signature", mutate: func(q *messages.RegistrationRequest) { q.Signature = [64]byte{} }, want: ErrBadSignature},
		{name: "another key claimed", mutate: func(q *messages.RegistrationRequest) { copy(q.PublicKey[:], other) }, want: ErrBadSignature},
		{name: "another domain", domain: "evil.example.net", want: ErrBadSignature},
		{name: "domain case differs", domain: "Tunnel.Example.com", want: ErrBadSignature},
		{name: "another nonce (replay onto a new link)", nonce: &[32]byte{0xaa, 0xbc}, want: ErrBadSignature},
		{name: "instance changed", mutate: func(q *messages.RegistrationRequest) { q.Instance[0] ^= 1 }, want: ErrBadSignature},
		{name: "timestamp changed", mutate: func(q *messages.RegistrationRequest) { q.Timestamp-- }, want: ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, ch := priv, messages.Challenge{Nonce: nonce, Domain: domain}
			if c.key != nil {
				key = c.key
			}
			if c.domain != "" {
				ch.Domain = c.domain
			}
			if c.nonce != nil {
				ch.Nonce = *c.nonce
			}
			req := Register(key, ch, [16]byte{1}, now.Add(c.signedAt))
			if c.mutate != nil {
				c.mutate(&req)
			}
			label, err := Verify(&req, domain, nonce, now)
			if c.want != nil {
				if !errors.Is(err, c.want) || label != "" {
					t.Errorf("got %q, %v; want \"\", %v", label, err, c.want)
				}
				return
			}
			if want := Label(key.Public().(ed25519.PublicKey)); err != nil || label != want {
				t.Errorf("got %q, %v; want %q, nil", label, err, want)
			}
		})
	}
}

func TestVerifyDomainTooLong(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", math.MaxUint16+1)
	now := time.Now()
	req := Register(priv, messages.Challenge{Domain: long}, [16]byte{}, now)
	if label, err := Verify(&req, long, [32]byte{}, now); err == nil {
		t.Errorf("got %q, nil; want an error", label)
	}
}
