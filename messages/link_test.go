package messages

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSignatureInputLayout(t *testing.T) {
	tests := []struct {
		name   string
		domain string
		q      RegistrationRequest
	}{
		{name: "typical", domain: "tunnel.example.com", q: testRegistration},
		{name: "empty domain", domain: "", q: RegistrationRequest{Timestamp: -1}},
		{name: "long domain", domain: strings.Repeat("a", 300), q: testRegistration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wire(SignatureContext).u8(Version).s16(tt.domain).put(testNonce[:]...).
				i64(tt.q.Timestamp).put(tt.q.PublicKey[:]...).put(tt.q.Instance[:]...)
			got := SignatureInput(tt.domain, testNonce, &tt.q)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %x, want %x", got, want)
			}
			if !strings.HasPrefix(string(got), "keyhole registration\x00\x01") {
				t.Fatalf("got prefix %q, want %q", got[:22], "keyhole registration\x00\x01")
			}
		})
	}
}

// TestSignatureInputBindsEverything changes each signed field in turn: every
// change must change the signed bytes, and the signature is not among them.
func TestSignatureInputBindsEverything(t *testing.T) {
	base := SignatureInput("tunnel.example.com", testNonce, &testRegistration)
	otherNonce := testNonce
	otherNonce[31] ^= 1
	tests := []struct {
		name   string
		domain string
		nonce  [NonceSize]byte
		edit   func(q *RegistrationRequest)
		same   bool
	}{
		{name: "domain", domain: "tunnel.example.org", nonce: testNonce, edit: func(*RegistrationRequest) {}},
		{name: "domain suffix", domain: "tunnel.example.co", nonce: testNonce, edit: func(*RegistrationRequest) {}},
		{name: "nonce", domain: "tunnel.example.com", nonce: otherNonce, edit: func(*RegistrationRequest) {}},
		{name: "timestamp", domain: "tunnel.example.com", nonce: testNonce, edit: func(q *RegistrationRequest) { q.Timestamp++ }},
		{name: "key", domain: "tunnel.example.com", nonce: testNonce, edit: func(q *RegistrationRequest) { q.PublicKey[0] ^= 1 }},
		{name: "instance", domain: "tunnel.example.com", nonce: testNonce, edit: func(q *RegistrationRequest) { q.Instance[15] ^= 1 }},
		{name: "signature not signed", domain: "tunnel.example.com", nonce: testNonce, edit: func(q *RegistrationRequest) { q.Signature[0] ^= 1 }, same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := testRegistration
			tt.edit(&q)
			got := SignatureInput(tt.domain, tt.nonce, &q)
			if bytes.Equal(got, base) != tt.same {
				t.Fatalf("got equal=%v to the unchanged input, want %v", !tt.same, tt.same)
			}
		})
	}
}

// The known-answer vector published in PROTOCOL.md ("Registration"): the
// RFC 8037 Appendix A key registering with tunnel.example.com.
const (
	vectorSeed      = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	vectorX         = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	vectorDomain    = "tunnel.example.com"
	vectorTimestamp = 1700000000000
	vectorChallenge = "0101000000000000000000000000000000000000" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
		"0012" + "74756e6e656c2e6578616d706c652e636f6d"
	vectorInput = "6b6579686f6c6520726567697374726174696f6e00" + "01" +
		"0012" + "74756e6e656c2e6578616d706c652e636f6d" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
		"0000018bcfe56800" +
		"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" +
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	vectorSignature = "6b44531fb207b47240eee41dc20cd7ecdbe52b8a6ca6e7659d403e83f3e34f98" +
		"5fa8b001cb378c115938e7f9833cb1bcfd471568835381bc11ea8438c70f8606"
	vectorRegistration = "0102000000000000000000000000000000000000" +
		"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" +
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" +
		"0000018bcfe56800" +
		vectorSignature
)

func TestRegistrationVector(t *testing.T) {
	seed, err := base64.RawURLEncoding.DecodeString(vectorSeed)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if got := base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)); got != vectorX {
		t.Fatalf("public key: got %s, want %s", got, vectorX)
	}

	b, _ := hex.DecodeString(vectorChallenge)
	f, err := Parse(b)
	if err != nil || f.Type != TypeChallenge || !f.ID.IsZero() {
		t.Fatalf("challenge frame: got %v %v %v, want a Challenge on id 0", f.Type, f.ID, err)
	}
	c, err := ParseChallenge(f.Payload)
	if err != nil || c.Domain != vectorDomain || c.Nonce != testNonce {
		t.Fatalf("challenge: got %+v, %v, want domain %s and nonce 00..1f", c, err, vectorDomain)
	}

	q := RegistrationRequest{Timestamp: vectorTimestamp}
	copy(q.PublicKey[:], priv.Public().(ed25519.PublicKey))
	for i := range q.Instance {
		q.Instance[i] = byte(0xa0 + i)
	}
	input := SignatureInput(c.Domain, c.Nonce, &q)
	if got := hex.EncodeToString(input); got != vectorInput {
		t.Fatalf("signature input: got %s, want %s", got, vectorInput)
	}
	copy(q.Signature[:], ed25519.Sign(priv, input))
	if got := hex.EncodeToString(q.Signature[:]); got != vectorSignature {
		t.Fatalf("signature: got %s, want %s", got, vectorSignature)
	}
	got := hex.EncodeToString(append(AppendHeader(nil, TypeRegistrationRequest, 0, ID{}), q.Append(nil)...))
	if got != vectorRegistration {
		t.Fatalf("registration frame: got %s, want %s", got, vectorRegistration)
	}

	b, _ = hex.DecodeString(vectorRegistration)
	f, err = Parse(b)
	if err != nil {
		t.Fatalf("parsing the registration frame: got error %v, want none", err)
	}
	back, err := ParseRegistrationRequest(f.Payload)
	if err != nil || back != q {
		t.Fatalf("registration: got %+v, %v, want %+v", back, err, q)
	}
	if !ed25519.Verify(back.PublicKey[:], SignatureInput(vectorDomain, testNonce, &back), back.Signature[:]) {
		t.Fatalf("got a signature that does not verify, want one that does")
	}
}

func TestRegistrationRequestAppend(t *testing.T) {
	got := testRegistration.Append([]byte{0xee})
	want := append([]byte{0xee}, registrationBytes(testRegistration)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if len(got)-1 != 120 {
		t.Fatalf("got %d bytes, want 120", len(got)-1)
	}
}

func TestChallengeAppend(t *testing.T) {
	tests := []struct {
		name string
		in   Challenge
		want []byte
		err  error
	}{
		{name: "ok", in: Challenge{Nonce: testNonce, Domain: "localhost"}, want: wire(testNonce[:]).s16("localhost")},
		{name: "longest domain", in: Challenge{Domain: strings.Repeat("d", 0xffff)}, want: wire(make([]byte, 32)).s16(strings.Repeat("d", 0xffff))},
		{name: "domain of 65536 bytes", in: Challenge{Domain: strings.Repeat("d", 0x10000)}, err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Append([]byte("keep"))
			checkErr(t, err, tt.err)
			want := append([]byte("keep"), tt.want...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %.40x, want %.40x", got, want)
			}
		})
	}
}

func TestRegistrationResponseAppend(t *testing.T) {
	big := strings.Repeat("h", 0x10000)
	tests := []struct {
		name string
		in   RegistrationResponse
		want []byte
		err  error
	}{
		{name: "ok", in: RegistrationResponse{Hostname: "h.example", URL: "http://h.example:8080"}, want: wire(nil).s16("h.example").s16("http://h.example:8080")},
		{name: "hostname of 65536 bytes", in: RegistrationResponse{Hostname: big}, err: ErrTooLarge},
		{name: "url of 65536 bytes", in: RegistrationResponse{URL: big}, err: ErrTooLarge},
		{name: "payload over MaxPayload", in: RegistrationResponse{Hostname: big[:40000], URL: big[:40000]}, err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Append([]byte("keep"))
			checkErr(t, err, tt.err)
			want := append([]byte("keep"), tt.want...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %.40x, want %.40x", got, want)
			}
		})
	}
}

func TestStatusAppend(t *testing.T) {
	long := strings.Repeat("x", MaxChunk)
	tests := []struct {
		name string
		in   Status
		want string // the text that travels
	}{
		{name: "short", in: Status{Code: 502, Text: "dial tcp 127.0.0.1:3000: connection refused"}, want: "dial tcp 127.0.0.1:3000: connection refused"},
		{name: "empty", in: Status{Code: 1000}, want: ""},
		{name: "exactly MaxChunk", in: Status{Code: 1, Text: long}, want: long},
		{name: "cut to MaxChunk", in: Status{Code: 1, Text: long + "yyy"}, want: long},
		{name: "cut before a split rune", in: Status{Code: 1, Text: long[:MaxChunk-1] + "€"}, want: long[:MaxChunk-1]},
		{name: "four-byte rune across the cut", in: Status{Code: 1, Text: long[:MaxChunk-2] + "😀"}, want: long[:MaxChunk-2]},
		{name: "rune ending at the cut kept", in: Status{Code: 1, Text: long[:MaxChunk-3] + "€z"}, want: long[:MaxChunk-3] + "€"},
		{name: "invalid bytes cut at MaxChunk", in: Status{Code: 1, Text: strings.Repeat("\x80", MaxChunk+5)}, want: strings.Repeat("\x80", MaxChunk-3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.in.Append([]byte("keep"))
			want := append(wire("keep").u16(int(tt.in.Code)), tt.want...)
			if !bytes.Equal(enc, want) {
				t.Fatalf("got %d bytes ending %q, want %d ending %q", len(enc), enc[max(0, len(enc)-8):], len(want), want[max(0, len(want)-8):])
			}
			if utf8.ValidString(tt.in.Text) && !utf8.Valid(enc[6:]) {
				t.Fatalf("got invalid UTF-8 from valid text")
			}
			got, err := ParseStatus(enc[4:])
			if err != nil || got.Code != tt.in.Code || got.Text != tt.want {
				t.Fatalf("decoded: got code %d, %d bytes, %v, want code %d, %d bytes", got.Code, len(got.Text), err, tt.in.Code, len(tt.want))
			}
		})
	}
}
