package redisbus

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSenderKeysKept: a subscription keeps a sender's key only once a
// message of that sender passes every check. Forgeries under random
// sender ids, and authentic but stale messages, leave no state; messages
// of a sender it knows are opened with the kept key, allocating nothing.
func TestSenderKeysKept(t *testing.T) {
	const ch = "k:node:n"
	s := &subscription{b: &Bus{key: testKey()}, channel: ch, opener: newOpener(ch)}
	now := time.Now()
	msg := func(key []byte, id msgID, at time.Time) *redis.Message {
		_, env := seal(senderMAC(key, id.sender), new(nonce), nil, ch, at, id, []byte("m"))
		return &redis.Message{Channel: ch, Payload: string(env)}
	}
	other := deriveKey([]byte("another cluster secret"))
	for i := range 1000 {
		id := msgID{counter: 1}
		binary.BigEndian.PutUint64(id.sender[:], uint64(i))
		if _, err := s.open(msg(other, id, now), now); !errors.Is(err, errForged) {
			t.Fatalf("forgery %d: got %v, want %v", i, err, errForged)
		}
		if _, err := s.open(msg(testKey(), id, now.Add(-time.Hour)), now); !errors.Is(err, errStale) {
			t.Fatalf("stale message %d: got %v, want %v", i, err, errStale)
		}
	}
	if n := len(s.replay.senders); n != 0 {
		t.Fatalf("got %d senders kept after forgeries and stale messages, want 0", n)
	}

	const runs = 100
	msgs := make([]*redis.Message, runs+2)
	for i := range msgs {
		msgs[i] = msg(testKey(), msgID{testID.sender, uint64(i + 1)}, now)
	}
	if _, err := s.open(msgs[0], now); err != nil {
		t.Fatalf("first message: %v", err)
	}
	w := s.replay.senders[testID.sender]
	if len(s.replay.senders) != 1 || w == nil || w.gcm == nil {
		t.Fatalf("got senders %v, want the sender's window and key", s.replay.senders)
	}
	kept := w.gcm
	next := 1
	allocs := testing.AllocsPerRun(runs, func() {
		if _, err := s.open(msgs[next], now); err != nil {
			t.Fatalf("message %d: %v", next, err)
		}
		next++
	})
	if allocs != 0 {
		t.Errorf("opening a known sender's message: %v allocations, want 0", allocs)
	}
	if s.replay.senders[testID.sender].gcm != kept {
		t.Error("the sender's key was derived again")
	}
	if _, err := s.open(msgs[1], now); !errors.Is(err, errReplayed) {
		t.Errorf("replayed message: got %v, want %v", err, errReplayed)
	}
}
