package redisbus

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func testKey() []byte { return deriveKey([]byte("0123456789abcdef")) }

var testID = msgID{sender: senderID{1, 2, 3, 4, 5, 6, 7, 8}, counter: 0x0102030405060708}

func TestOpen(t *testing.T) {
	key := testKey()
	mac := hmac.New(sha256.New, key)
	now := time.UnixMilli(1_800_000_000_000)
	msg := []byte("hello")
	valid := seal(mac, "k:node:a", now, testID, msg)
	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
	flip := func(i int) []byte { return mutate(func(b []byte) []byte { b[i] ^= 1; return b }) }
	for _, tc := range []struct {
		name    string
		channel string
		at      time.Time
		env     []byte
		want    error
	}{
		{"valid", "k:node:a", now, valid, nil},
		{"valid at the edge of the window", "k:node:a", now.Add(MaxClockSkew), valid, nil},
		{"from the future, at the edge", "k:node:a", now.Add(-MaxClockSkew), valid, nil},
		{"too old", "k:node:a", now.Add(MaxClockSkew + time.Millisecond), valid, errStale},
		{"too new", "k:node:a", now.Add(-MaxClockSkew - time.Millisecond), valid, errStale},
		{"other channel", "k:node:b", now, valid, errForged},
		{"empty", "k:node:a", now, nil, errMalformed},
		{"header only, short", "k:node:a", now, valid[:headerSize-1], errMalformed},
		{"version 1", "k:node:a", now, mutate(func(b []byte) []byte { b[0] = 1; return b }), errMalformed},
		{"version 3", "k:node:a", now, mutate(func(b []byte) []byte { b[0] = 3; return b }), errMalformed},
		{"timestamp bit", "k:node:a", now, mutate(func(b []byte) []byte { b[offTimestamp] ^= 0x80; return b }), errForged},
		{"sender bit", "k:node:a", now, flip(offSender), errForged},
		{"counter bit", "k:node:a", now, flip(offTag - 1), errForged},
		{"tag bit", "k:node:a", now, flip(offTag), errForged},
		{"message bit", "k:node:a", now, flip(len(valid) - 1), errForged},
		{"truncated message", "k:node:a", now, valid[:len(valid)-1], errForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, id, err := open(mac, tc.channel, tc.at, tc.env)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if err == nil && (!bytes.Equal(got, msg) || id != testID) {
				t.Fatalf("got %q, %v; want %q, %v", got, id, msg, testID)
			}
		})
	}
}

// TestSealLayout pins the header to the layout documented in envelope.go.
func TestSealLayout(t *testing.T) {
	mac := hmac.New(sha256.New, testKey())
	now := time.UnixMilli(1_800_000_000_123)
	env := seal(mac, "k:node:a", now, testID, []byte("hi"))
	want := []byte{2, 0, 0, 0x01, 0xa3, 0x18, 0x5c, 0x50, 0x7b, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}
	if headerSize != 57 || len(env) != 57+2 || !bytes.Equal(env[:offTag], want) || string(env[headerSize:]) != "hi" {
		t.Fatalf("got envelope %x, want header %x, 32 bytes of tag, then the message", env, want)
	}
}

// TestChannelLengthBound: the channel is length-prefixed, so moving bytes
// between the channel name and the message cannot keep a tag valid.
func TestChannelLengthBound(t *testing.T) {
	mac := hmac.New(sha256.New, testKey())
	now := time.Now()
	a := seal(mac, "k:node:ab", now, testID, []byte("c"))
	b := seal(mac, "k:node:a", now, testID, []byte("bc"))
	if bytes.Equal(a[offTag:headerSize], b[offTag:headerSize]) {
		t.Fatal("got equal tags for different channel/message splits")
	}
}

func FuzzOpen(f *testing.F) {
	mac := hmac.New(sha256.New, testKey())
	now := time.UnixMilli(1_800_000_000_000)
	f.Add(seal(mac, "c", now, testID, []byte("hello")))
	f.Add([]byte{})
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, env []byte) {
		msg, id, err := open(mac, "c", now, env)
		if err == nil {
			// Anything accepted must be exactly what sealing it gives.
			ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[offTimestamp:])))
			if !bytes.Equal(seal(mac, "c", ts, id, msg), env) {
				t.Fatalf("accepted %x, which sealing does not produce", env)
			}
		}
	})
}

func BenchmarkSealOpen(b *testing.B) {
	mac := hmac.New(sha256.New, testKey())
	msg := bytes.Repeat([]byte{1}, 1024)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		env := seal(mac, "keyhole:node:abc", now, testID, msg)
		if _, _, err := open(mac, "keyhole:node:abc", now, env); err != nil {
			b.Fatal(err)
		}
	}
}
