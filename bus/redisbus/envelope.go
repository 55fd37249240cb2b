package redisbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"time"
)

// Envelope layout, version 1. Every message on the wire is
//
//	offset  size  field
//	0       1     version, 1
//	1       8     timestamp: Unix milliseconds when sealed, big-endian int64
//	9       32    tag: HMAC-SHA256(key, mac input), see below
//	41      n     the message, as given to Publish
//
// key   = HMAC-SHA256(Options.Secret, "keyhole bus v1"), so the cluster
//
//	secret is never used directly and can serve other purposes too.
//
// mac input = uint32 big-endian len(channel) || channel || bytes 0..8 of
//
//	the envelope (version and timestamp) || the message
//
// where channel is the full Redis channel name the message is published to
// ("<prefix>:node:<node>"), so a message for one node cannot be replayed to
// another. A receiver checks the tag first (in constant time) and then the
// timestamp, which must be within MaxClockSkew of its own clock.
const (
	envelopeVersion = 1
	headerSize      = 1 + 8 + sha256.Size
	keyLabel        = "keyhole bus v1"
)

// MaxClockSkew is how far a message's timestamp may be from the receiver's
// clock, either way. It bounds how long a captured message can be replayed
// (on its own channel) and how far apart the nodes' clocks may drift.
const MaxClockSkew = 30 * time.Second

var (
	errMalformed = errors.New("malformed envelope")
	errForged    = errors.New("bad message authentication code")
	errStale     = errors.New("timestamp outside the allowed window")
)

// deriveKey turns the cluster secret into the bus's MAC key.
func deriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(keyLabel))
	return m.Sum(nil)
}

// seal returns the envelope of msg for channel, stamped at now.
func seal(mac hash.Hash, channel string, now time.Time, msg []byte) []byte {
	env := make([]byte, headerSize+len(msg))
	env[0] = envelopeVersion
	binary.BigEndian.PutUint64(env[1:9], uint64(now.UnixMilli()))
	copy(env[headerSize:], msg)
	sum(mac, channel, env[:9], msg, env[9:9:headerSize])
	return env
}

// open checks env against channel and now and returns the message inside,
// which aliases env.
func open(mac hash.Hash, channel string, now time.Time, env []byte) ([]byte, error) {
	if len(env) < headerSize || env[0] != envelopeVersion {
		return nil, errMalformed
	}
	msg := env[headerSize:]
	var tag [sha256.Size]byte
	if !hmac.Equal(sum(mac, channel, env[:9], msg, tag[:0]), env[9:headerSize]) {
		return nil, errForged
	}
	ts := time.UnixMilli(int64(binary.BigEndian.Uint64(env[1:9])))
	if d := now.Sub(ts); d > MaxClockSkew || d < -MaxClockSkew {
		return nil, errStale
	}
	return msg, nil
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
