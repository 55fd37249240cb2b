package redisbus

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
)

func testKey() []byte { return deriveKey([]byte("0123456789abcdef")) }

var testID = msgID{sender: senderID{1, 2, 3, 4, 5, 6, 7, 8}, counter: 0x0102030405060708}

// sealTest seals msg under testKey.
func sealTest(channel string, now time.Time, id msgID, msg []byte) []byte {
	_, env := seal(senderMAC(testKey(), id.sender), new(nonce), nil, channel, now, id, msg)
	return env
}

// openTest opens env as a receiver on channel does, under testKey.
func openTest(channel string, now time.Time, env []byte) ([]byte, msgID, error) {
	o := newOpener(channel)
	_, id, err := o.load(string(env))
	if err != nil {
		return nil, msgID{}, err
	}
	msg, err := o.open(senderMAC(testKey(), id.sender), id, now)
	return msg, id, err
}

func TestOpen(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	msg := []byte("hello")
	valid := sealTest("k:node:a", now, testID, msg)
	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
	flip := func(i int) []byte { return mutate(func(b []byte) []byte { b[i] ^= 1; return b }) }
	version := func(v byte) []byte { return mutate(func(b []byte) []byte { b[0] = v; return b }) }
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
		{"header and tag only, short", "k:node:a", now, valid[:overhead-1], errMalformed},
		{"version 1", "k:node:a", now, version(1), errMalformed},
		{"version 2", "k:node:a", now, version(2), errMalformed},
		{"version 4", "k:node:a", now, version(4), errMalformed},
		{"timestamp bit", "k:node:a", now, mutate(func(b []byte) []byte { b[offTimestamp] ^= 0x80; return b }), errForged},
		{"sender bit", "k:node:a", now, flip(offSender), errForged},
		{"counter bit", "k:node:a", now, flip(headerSize - 1), errForged},
		{"message bit", "k:node:a", now, flip(headerSize), errForged},
		{"tag bit", "k:node:a", now, flip(len(valid) - 1), errForged},
		{"truncated", "k:node:a", now, valid[:len(valid)-1], errForged},
		{"appended", "k:node:a", now, append(bytes.Clone(valid), 0), errForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, id, err := openTest(tc.channel, tc.at, tc.env)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if err == nil && (!bytes.Equal(got, msg) || id != testID) {
				t.Fatalf("got %q, %v; want %q, %v", got, id, msg, testID)
			}
		})
	}
}

// TestSealLayout pins the envelope to the layout documented in envelope.go,
// the tag computed here from the documented derivation.
func TestSealLayout(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_123)
	env := sealTest("k:node:a", now, testID, []byte("hi"))
	head := []byte{3, 0, 0, 0x01, 0xa3, 0x18, 0x5c, 0x50, 0x7b, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}

	k := hmac.New(sha256.New, testKey())
	k.Write([]byte("keyhole bus v3 sender"))
	k.Write(testID.sender[:])
	block, err := aes.NewCipher(k.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	input := binary.BigEndian.AppendUint32(nil, uint32(len("k:node:a")))
	input = append(append(append(input, "k:node:a"...), head...), "hi"...)
	iv := append(make([]byte, 4), 1, 2, 3, 4, 5, 6, 7, 8)
	tag := gcm.Seal(nil, iv, nil, input)

	want := append(append(head, "hi"...), tag...)
	if headerSize != 25 || overhead != 41 || !bytes.Equal(env, want) {
		t.Fatalf("got envelope %x, want %x", env, want)
	}
}

// TestChannelLengthBound: the channel is length-prefixed, so moving bytes
// between the channel name and the message cannot keep a tag valid.
func TestChannelLengthBound(t *testing.T) {
	now := time.Now()
	a := sealTest("k:node:ab", now, testID, []byte("c"))
	b := sealTest("k:node:a", now, testID, []byte("bc"))
	if bytes.Equal(a[len(a)-tagSize:], b[len(b)-tagSize:]) {
		t.Fatal("got equal tags for different channel/message splits")
	}
}

// TestSenderKeys: each sender id has its own key, so the same counter (the
// GCM nonce) under two senders never meets one key twice.
func TestSenderKeys(t *testing.T) {
	now := time.Now()
	other := msgID{sender: senderID{8, 7, 6, 5, 4, 3, 2, 1}, counter: testID.counter}
	a := sealTest("c", now, testID, []byte("m"))
	b := sealTest("c", now, other, []byte("m"))
	if bytes.Equal(a[len(a)-tagSize:], b[len(b)-tagSize:]) {
		t.Fatal("two senders' tags for the same channel, counter and message are equal")
	}
	// b with a's sender id: a's key does not open it.
	copy(b[offSender:], testID.sender[:])
	if _, _, err := openTest("c", now, b); !errors.Is(err, errForged) {
		t.Fatalf("opened another sender's envelope under a's id: %v, want %v", err, errForged)
	}
}

// TestSealOpenAllocate: sealing into a buffer with room, and opening a
// message of a sender whose key is known, allocate nothing.
func TestSealOpenAllocate(t *testing.T) {
	gcm := senderMAC(testKey(), testID.sender)
	var n nonce
	msg := bytes.Repeat([]byte{1}, 64<<10)
	buf := make([]byte, 0, 4+len("k:node:a")+overhead+len(msg))
	now := time.Now()
	var env []byte
	if a := testing.AllocsPerRun(100, func() { buf, env = seal(gcm, &n, buf, "k:node:a", now, testID, msg) }); a != 0 {
		t.Errorf("seal: %v allocations, want 0", a)
	}
	o := newOpener("k:node:a")
	payload := string(env)
	o.load(payload) // grows the buffer once
	if a := testing.AllocsPerRun(100, func() {
		_, id, err := o.load(payload)
		if err == nil {
			_, err = o.open(gcm, id, now)
		}
		if err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("open: %v allocations, want 0", a)
	}
}

func FuzzOpen(f *testing.F) {
	now := time.UnixMilli(1_800_000_000_000)
	f.Add(sealTest("c", now, testID, []byte("hello")))
	f.Add(sealTest("c", now, testID, nil))
	f.Add(sealTest("c", now, msgID{sender: senderID{9}, counter: 1}, []byte("\x01a\x02bc")))
	f.Add([]byte{})
	f.Add(make([]byte, overhead))
	f.Add(append([]byte{3}, make([]byte, overhead-1)...))
	f.Fuzz(func(t *testing.T, env []byte) {
		msg, id, err := openTest("c", now, env)
		if err == nil {
			// Anything accepted must be exactly what sealing it gives.
			ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[offTimestamp:])))
			if !bytes.Equal(sealTest("c", ts, id, msg), env) {
				t.Fatalf("accepted %x, which sealing does not produce", env)
			}
		}
	})
}

var benchSizes = []int{1 << 10, 64 << 10}

// BenchmarkSeal seals as Publish does: into a buffer it reuses.
func BenchmarkSeal(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			gcm := senderMAC(testKey(), testID.sender)
			var n nonce
			var buf []byte
			msg := bytes.Repeat([]byte{1}, size)
			now := time.Now()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf, _ = seal(gcm, &n, buf, "keyhole:node:abc", now, testID, msg)
			}
		})
	}
}

// BenchmarkOpen opens as a subscription does: it copies the payload
// go-redis received into its buffer and opens it with the sender's key.
func BenchmarkOpen(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			gcm := senderMAC(testKey(), testID.sender)
			now := time.Now()
			payload := string(sealTest("keyhole:node:abc", now, testID, bytes.Repeat([]byte{1}, size)))
			o := newOpener("keyhole:node:abc")
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				_, id, err := o.load(payload)
				if err == nil {
					_, err = o.open(gcm, id, now)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
