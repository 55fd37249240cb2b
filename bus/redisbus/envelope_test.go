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

func TestOpen(t *testing.T) {
	key := testKey()
	mac := hmac.New(sha256.New, key)
	now := time.UnixMilli(1_800_000_000_000)
	msg := []byte("hello")
	valid := seal(mac, "k:node:a", now, msg)
	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
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
		{"version 2", "k:node:a", now, mutate(func(b []byte) []byte { b[0] = 2; return b }), errMalformed},
		{"timestamp bit", "k:node:a", now, mutate(func(b []byte) []byte { b[1] ^= 0x80; return b }), errForged},
		{"tag bit", "k:node:a", now, mutate(func(b []byte) []byte { b[9] ^= 1; return b }), errForged},
		{"message bit", "k:node:a", now, mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), errForged},
		{"truncated message", "k:node:a", now, valid[:len(valid)-1], errForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := open(mac, tc.channel, tc.at, tc.env)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, msg) {
				t.Fatalf("got %q, want %q", got, msg)
			}
		})
	}
}

// TestChannelLengthBound: the channel is length-prefixed, so moving bytes
// between the channel name and the message cannot keep a tag valid.
func TestChannelLengthBound(t *testing.T) {
	mac := hmac.New(sha256.New, testKey())
	now := time.Now()
	a := seal(mac, "k:node:ab", now, []byte("c"))
	b := seal(mac, "k:node:a", now, []byte("bc"))
	if bytes.Equal(a[9:headerSize], b[9:headerSize]) {
		t.Fatal("got equal tags for different channel/message splits")
	}
}

func FuzzOpen(f *testing.F) {
	mac := hmac.New(sha256.New, testKey())
	now := time.UnixMilli(1_800_000_000_000)
	f.Add(seal(mac, "c", now, []byte("hello")))
	f.Add([]byte{})
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, env []byte) {
		msg, err := open(mac, "c", now, env)
		if err == nil {
			// Anything accepted must be exactly what sealing it gives.
			ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[1:9])))
			if !bytes.Equal(seal(mac, "c", ts, msg), env) {
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
		env := seal(mac, "keyhole:node:abc", now, msg)
		if _, err := open(mac, "keyhole:node:abc", now, env); err != nil {
			b.Fatal(err)
		}
	}
}
