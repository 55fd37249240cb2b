package messages

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestProtocolDocVectors checks the byte examples in section 14 of
// PROTOCOL.md against this package, so the specification and the code
// cannot drift apart. In each fenced block a line's leading hex words are
// bytes; the first word that is not hex starts a comment.
func TestProtocolDocVectors(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatalf("reading the specification: %v", err)
	}
	_, vectors, ok := strings.Cut(string(doc), "\n## 14. Test vectors")
	if !ok {
		t.Fatalf("got no section 14 in PROTOCOL.md, want its test vectors")
	}
	blocks := hexBlocks(vectors)

	const (
		label    = "sd5mv7vjwfkwngcub5ymael2elvdppk46pwtyryjhqlqokbljoeq"
		hostname = label + "." + vectorDomain
	)
	for _, s := range []string{vectorSeed, vectorX, label, hostname,
		`{"crv":"Ed25519","kty":"OKP","x":"` + vectorX + `"}`} {
		if !strings.Contains(vectors, "`"+s+"`") {
			t.Errorf("got no `%s` in section 14, want it", s)
		}
	}

	seed, _ := base64.RawURLEncoding.DecodeString(vectorSeed)
	priv := ed25519.NewKeyFromSeed(seed)
	q := RegistrationRequest{Timestamp: vectorTimestamp}
	copy(q.PublicKey[:], priv.Public().(ed25519.PublicKey))
	for i := range q.Instance {
		q.Instance[i] = byte(0xa0 + i)
	}
	input := SignatureInput(vectorDomain, testNonce, &q)
	copy(q.Signature[:], ed25519.Sign(priv, input))
	challenge, _ := (&Challenge{Nonce: testNonce, Domain: vectorDomain}).Append(nil)
	response, _ := (&RegistrationResponse{Hostname: hostname, URL: "https://" + hostname}).Append(nil)
	request, _ := AppendRequestHead(nil, &RequestHead{Method: "GET", URI: "/hi?x=1", Host: hostname, Header: http.Header{"Accept": {"*/*"}}})
	answer, _ := AppendResponseHead(nil, &ResponseHead{Status: 200, ContentLength: 2, Header: http.Header{"Set-Cookie": {"a=1", "b=2"}}})

	want := []struct {
		name string
		b    []byte
	}{
		{"Challenge frame", frame(TypeChallenge, 0, ID{}, challenge)},
		{"signature input", input},
		{"signature", q.Signature[:]},
		{"RegistrationRequest frame", frame(TypeRegistrationRequest, 0, ID{}, q.Append(nil))},
		{"RegistrationResponse frame", frame(TypeRegistrationResponse, 0, ID{}, response)},
		{"HTTPRequest frame", frame(TypeHTTPRequest, FlagEnd, testID, request)},
		{"HTTPResponse frame", frame(TypeHTTPResponse, 0, testID, answer)},
		{"Data frame", frame(TypeData, FlagEnd, testID, []byte("ok"))},
	}
	if len(blocks) != len(want) {
		t.Fatalf("got %d hex blocks in section 14, want %d", len(blocks), len(want))
	}
	for i, w := range want {
		if got := blocks[i]; got != hex.EncodeToString(w.b) {
			t.Errorf("%s: got %s, want %x", w.name, got, w.b)
		}
	}
}

// hexBlocks returns, for each fenced block of s, the hex its lines start with.
func hexBlocks(s string) []string {
	var blocks []string
	parts := strings.Split(s, "```")
	for i := 1; i < len(parts); i += 2 {
		var b strings.Builder
		for _, line := range strings.Split(parts[i], "\n") {
			for _, w := range strings.Fields(line) {
				if _, err := hex.DecodeString(w); err != nil {
					break
				}
				b.WriteString(w)
			}
		}
		blocks = append(blocks, b.String())
	}
	return blocks
}
