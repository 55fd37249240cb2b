package redisbus

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// Envelope layout, version 3. Every message on the wire is
//
//	offset  size  field
//	0       1     version, 3
//	1       8     timestamp: Unix milliseconds when sealed, big-endian int64
//	9       8     sender id: 8 random bytes, chosen once per Bus by New
//	17      8     counter: the sender's message number, big-endian uint64,
//	              from 1 and one more for every message it seals
//	25      n     the message, as given to Publish
//	25+n    16    tag: AES-256-GMAC under the sender's key, see below
//
// key        = HMAC-SHA256(Options.Secret, "keyhole bus v1"), so the cluster
//
//	secret is never used directly and can serve other purposes too. (The
//	label names the key, not the layout: it did not change with versions 2
//	and 3.)
//
// sender key = HMAC-SHA256(key, "keyhole bus v3 sender" || sender id),
//
//	an AES-256 key per sender, derived once by the sender and once by each
//	receiver per sender it hears.
//
// mac input  = uint32 big-endian len(channel) || channel || the envelope
//
//	without its tag (version, timestamp, sender id, counter, message)
//
// tag        = the tag of AES-256-GCM (sender key, nonce 4 zero bytes ||
//
//	counter, no plaintext, mac input as the additional data): GMAC.
//
// channel is the full Redis channel name the message is published to
// ("<prefix>:node:<node>"), so a message for one node cannot be replayed to
// another. GCM must never see one nonce twice under one key: a sender's
// counter only grows, and every sender id has its own key. The tag comes
// last so that the mac input is one run of bytes in the buffer a message is
// sealed in or received into: the channel's prefix, then the envelope.
//
// A receiver checks the tag first (in constant time), then the timestamp,
// which must be within MaxClockSkew of its own clock, and only then the
// sender id and counter against its replay window (replay.go), which drops
// a counter it has already seen from that sender. Versions 1 (no sender id
// or counter) and 2 (HMAC-SHA256 tags) are refused like any other unknown
// version.
const (
	envelopeVersion = 3
	offTimestamp    = 1
	offSender       = 9
	offCounter      = 17
	headerSize      = 25 // the message starts here
	tagSize         = 16
	overhead        = headerSize + tagSize // 41
	keyLabel        = "keyhole bus v1"
	senderKeyLabel  = "keyhole bus v3 sender"
)

// MaxClockSkew is how far a message's timestamp may be from the receiver's
// clock, either way. It bounds how far apart the nodes' clocks may drift,
// and how long a receiver must remember a sender's counters to refuse a
// replay (see senderRetention).
const MaxClockSkew = 30 * time.Second

var (
	errMalformed = errors.New("malformed envelope")
	errForged    = errors.New("bad message authentication code")
	errStale     = errors.New("timestamp outside the allowed window")
	errReplayed  = errors.New("counter already seen or older than the replay window")
)

// senderID tells apart the Buses that publish on one Redis.
type senderID [8]byte

// msgID names one sealed message: its sender and that sender's counter.
type msgID struct {
	sender  senderID
	counter uint64
}

// nonce is a GCM nonce: 4 zero bytes, then the counter. It lives in the
// caller's long-lived state so that passing it to the AEAD allocates
// nothing.
type nonce [12]byte

func (n *nonce) set(counter uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], counter)
	return n[:]
}

// deriveKey turns the cluster secret into the bus's MAC key.
func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(keyLabel))
	return m.Sum(nil)
}

// senderMAC returns the GCM of sender's key under the bus's MAC key. It is
// safe for concurrent use.
func senderMAC(key []byte, sender senderID) cipher.AEAD {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(senderKeyLabel))
	m.Write(sender[:])
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key cannot fail
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err) // a standard block and tag size cannot fail
	}
	return gcm
}

// appendPrefix appends what the mac input holds before the envelope on
// channel.
func appendPrefix(b []byte, channel string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(channel)))
	return append(b, channel...)
}

// seal appends to buf[:0] the mac prefix of channel, then the envelope of
// msg stamped at now as message id, and returns all of it and the
// envelope, which aliases its tail. gcm is the sender's (senderMAC), n any
// nonce not used concurrently. With room in buf it allocates nothing.
func seal(gcm cipher.AEAD, n *nonce, buf []byte, channel string, now time.Time, id msgID, msg []byte) (in, env []byte) {
	in = appendPrefix(buf[:0], channel)
	at := len(in)
	in = append(in, envelopeVersion)
	in = binary.BigEndian.AppendUint64(in, uint64(now.UnixMilli()))
	in = append(in, id.sender[:]...)
	in = binary.BigEndian.AppendUint64(in, id.counter)
	in = append(in, msg...)
	in = gcm.Seal(in, n.set(id.counter), nil, in)
	return in, in[at:]
}

// parse checks env's length and version and returns its id, which names
// the key to open it with. Nothing in it is authentic yet.
func parse(env []byte) (msgID, error) {
	if len(env) < overhead || env[0] != envelopeVersion {
		return msgID{}, errMalformed
	}
	var id msgID
	copy(id.sender[:], env[offSender:offCounter])
	id.counter = binary.BigEndian.Uint64(env[offCounter:])
	return id, nil
}

// open checks the tag of the envelope at in[at:] (in is the channel's mac
// prefix, then the envelope, which parse accepted as message id) with the
// sender's gcm, then its timestamp against now, and returns the message
// inside, which aliases in. Checking the id against replays is the
// caller's job.
func open(gcm cipher.AEAD, n *nonce, in []byte, at int, id msgID, now time.Time) ([]byte, error) {
	end := len(in) - tagSize
	if _, err := gcm.Open(nil, n.set(id.counter), in[end:], in[:end]); err != nil {
		return nil, errForged
	}
	env := in[at:]
	ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[offTimestamp:])))
	if d := now.Sub(ts); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, errStale
	}
	return env[headerSize : len(env)-tagSize], nil
}

// opener opens the envelopes received on one channel, one at a time, in
// one buffer that it reuses. It is not safe for concurrent use.
type opener struct {
	at int    // where the envelope starts in in: the length of the mac prefix
	in []byte // the channel's mac prefix, then the envelope last loaded
	n  nonce
}

func newOpener(channel string) *opener {
	p := appendPrefix(nil, channel)
	return &opener{at: len(p), in: p}
}

// load copies payload in behind the mac prefix and returns the envelope,
// which stays valid until the next load, and its id if parse accepts it.
func (o *opener) load(payload string) ([]byte, msgID, error) {
	o.in = append(o.in[:o.at], payload...)
	env := o.in[o.at:]
	id, err := parse(env)
	return env, id, err
}

// open opens the envelope last loaded, of message id, with its sender's
// gcm, and returns the message inside, valid until the next load.
func (o *opener) open(gcm cipher.AEAD, id msgID, now time.Time) ([]byte, error) {
	return open(gcm, &o.n, o.in, o.at, id, now)
}
