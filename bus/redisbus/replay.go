package redisbus

import (
	"crypto/cipher"
	"time"
)

// Anti-replay, in the style of IPsec and DTLS (RFC 4303 3.4.3, RFC 6479).
// Every envelope carries its sender's id and a counter that the sender
// increases by one per Publish. A receiver keeps, per sender, the highest
// counter it accepted and a bitmap of the windowSize counters up to it, and
// drops a counter it has seen or one below the window. Counters may arrive
// out of order (a Bus pipelines on more than one connection, see
// publish.go), so the window is far wider than the publishes that can be in
// flight at once: the publish queue plus the pipelines. A genuine message
// that falls below it anyway is dropped like a lost one.
const (
	windowSize  = 8192 // counters a window remembers, the highest included; a multiple of 64
	windowWords = windowSize/64 + 1

	// senderRetention is how long a receiver keeps the window of a sender
	// it no longer hears from. Forgetting a window is safe once everything
	// it accepted is stale: a message accepted at time A (receiver's clock)
	// carries a timestamp of at most A+MaxClockSkew, so it passes the
	// timestamp check only until A+2*MaxClockSkew. If the last message
	// accepted from a sender came at H, a replay of any of them is refused
	// as stale from H+2*MaxClockSkew on, and the window has nothing left to
	// refuse. Twice that bound leaves room for the receiver's wall clock
	// (which the timestamp check uses) being stepped back by up to
	// 2*MaxClockSkew; the age of a window is measured on the monotonic
	// clock.
	senderRetention = 4 * MaxClockSkew

	// sweepEvery bounds how often a subscription looks for windows to
	// forget, so the sweep costs nothing per message.
	sweepEvery = 5 * time.Second
)

// window is one sender's anti-replay window. The zero window has seen
// nothing. The bitmap is a ring of 64-bit words: counter c is bit c%64 of
// word (c/64)%windowWords. Sliding the window up clears only the words the
// new counters land in, instead of shifting the whole bitmap. The ring has
// one word more than windowSize needs, so the oldest counter in the window
// never shares a word with the newest (which would clear it while it is
// still in the window).
type window struct {
	top   uint64              // highest counter accepted; 0 before the first
	ring  [windowWords]uint64 // bit set: that counter was accepted
	heard time.Time           // when a counter was last accepted
	gcm   cipher.AEAD         // the sender's key (senderMAC), kept as long as the window
}

// accept reports whether c is new: above the window, or inside it and not
// seen. It records c as seen if so.
func (w *window) accept(c uint64) bool {
	switch {
	case c > w.top:
		w.slide(c)
	case w.top-c >= windowSize:
		return false // below the window: it may have been seen, so refuse it
	}
	word, bit := &w.ring[(c/64)%windowWords], uint64(1)<<(c%64)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}

// slide moves the top of the window up to c. The words from the one after
// top's to c's hold counters that have now fallen out of the window (from a
// lap of the ring ago), or nothing: clear them. A jump of a full ring or
// more clears them all.
func (w *window) slide(c uint64) {
	from, to := w.top/64, c/64
	if to-from >= windowWords {
		clear(w.ring[:])
	} else {
		for i := from + 1; i <= to; i++ {
			w.ring[i%windowWords] = 0
		}
	}
	w.top = c
}

// replayFilter holds the windows of the senders one subscription hears,
// and their keys. It is owned by the subscription's goroutine and needs no
// lock.
type replayFilter struct {
	senders   map[senderID]*window
	lastSweep time.Time
}

// mac returns the key to open sender's envelopes with: the one kept with
// its window, or one derived from the bus's MAC key and kept nowhere. So a
// forgery under an unknown sender id costs one derivation and leaves no
// state; only accept keeps a key.
func (f *replayFilter) mac(key []byte, sender senderID) cipher.AEAD {
	if w := f.senders[sender]; w != nil {
		return w.gcm
	}
	return senderMAC(key, sender)
}

// accept reports whether id has not been seen before, and records it,
// keeping gcm (the sender's key) with a new window. Only authenticated,
// fresh messages may be passed, so that forgeries cannot create windows or
// move them. now must carry a monotonic reading (time.Now).
func (f *replayFilter) accept(id msgID, gcm cipher.AEAD, now time.Time) bool {
	f.sweep(now)
	w := f.senders[id.sender]
	if w == nil {
		if f.senders == nil {
			f.senders = make(map[senderID]*window)
		}
		w = &window{gcm: gcm}
		f.senders[id.sender] = w
	}
	if !w.accept(id.counter) {
		return false
	}
	w.heard = now
	return true
}

// sweep forgets the senders not heard from for senderRetention, and their
// keys, at most once every sweepEvery. Memory stays bounded by the senders heard in the
// last senderRetention+sweepEvery, about 1 KiB each.
func (f *replayFilter) sweep(now time.Time) {
	if now.Sub(f.lastSweep) < sweepEvery {
		return
	}
	f.lastSweep = now
	for id, w := range f.senders {
		if now.Sub(w.heard) >= senderRetention {
			delete(f.senders, id)
		}
	}
}
