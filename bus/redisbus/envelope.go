package redisbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"time"
)

// Envelope layout, version 2. Every message on the wire is
//
//	offset  size  field
//	0       1     version, 2
//	1       8     timestamp: Unix milliseconds when sealed, big-endian int64
//	9       8     sender id: 8 random bytes, chosen once per Bus by New
//	17      8     counter: the sender's message number, big-endian uint64,
//	              from 1 and one more for every Publish
//	25      32    tag: HMAC-SHA256(key, mac input), see below
//	57      n     the message, as given to Publish
//
// key   = HMAC-SHA256(Options.Secret, "keyhole bus v1"), so the cluster
//
//	secret is never used directly and can serve other purposes too. (The
//	label names the key, not the layout: it did not change with version 2.)
//
// mac input = uint32 big-endian len(channel) || channel || bytes 0..24 of
//
//	the envelope (version, timestamp, sender id and counter) || the message
//
// where channel is the full Redis channel name the message is published to
// ("<prefix>:node:<node>"), so a message for one node cannot be replayed to
// another. A receiver checks the tag first (in constant time), then the
// timestamp, which must be within MaxClockSkew of its own clock, and only
// then the sender id and counter against its replay window (replay.go),
// which drops a counter it has already seen from that sender. Version 1
// had no sender id or counter, so it could be replayed on its own channel
// within MaxClockSkew; it is refused like any other unknown version.
const (
	envelopeVersion = 2
	offTimestamp    = 1
	offSender       = 9
	offCounter      = 17
	offTag          = 25
	headerSize      = offTag + sha256.Size // 57
	keyLabel        = "keyhole bus v1"
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

// deriveKey turns the cluster secret into the bus's MAC key.
func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(keyLabel))
	return m.Sum(nil)
}

// seal returns the envelope of msg for channel, stamped at now, as message
// id.
func seal(mac hash.Hash, channel string, now time.Time, id msgID, msg []byte) []byte {
	env := make([]byte, headerSize+len(msg))
	env[0] = envelopeVersion
	binary.BigEndian.PutUint64(env[offTimestamp:], uint64(now.UnixMilli()))
	copy(env[offSender:], id.sender[:])
	binary.BigEndian.PutUint64(env[offCounter:], id.counter)
	copy(env[headerSize:], msg)
	sum(mac, channel, env[:offTag], msg, env[offTag:offTag:headerSize])
	return env
}

// open checks env's tag against channel and its timestamp against now, and
// returns the message inside, which aliases env, and its id. Checking the
// id against replays is the caller's job.
func open(mac hash.Hash, channel string, now time.Time, env []byte) ([]byte, msgID, error) {
	if len(env) < headerSize || env[0] != envelopeVersion {
		return nil, msgID{}, errMalformed
	}
	msg := env[headerSize:]
	var tag [sha256.Size]byte
	if !hmac.Equal(sum(mac, channel, env[:offTag], msg, tag[:0]), env[offTag:headerSize]) {
		return nil, msgID{}, errForged
	}
	ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[offTimestamp:])))
	if d := now.Sub(ts); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, msgID{}, errStale
	}
	var id msgID
	copy(id.sender[:], env[offSender:offCounter])
	id.counter = binary.BigEndian.Uint64(env[offCounter:])
	return msg, id, nil
}

// sum appends the tag of (channel, head, msg) to out.
func sum(mac hash.Hash, channel string, head, msg, out []byte) []byte {
	mac.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(channel)))
	mac.Write(n[:])
	mac.Write([]byte(channel))
	mac.Write(head)
	mac.Write(msg)
	return mac.Sum(out)
}
