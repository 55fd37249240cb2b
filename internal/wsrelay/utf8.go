package wsrelay

import "unicode/utf8"

// textCheck validates a text message piece by piece (RFC 6455 section
// 8.1). A piece may end inside a character, which the next piece
// completes; a piece fails as soon as its bytes cannot begin valid UTF-8,
// without waiting for the end of the message.
type textCheck struct {
	tail [utf8.UTFMax]byte // the start of an unfinished character
	n    int               // bytes in tail
}

// add reports whether the message, with p appended, can still be valid.
func (c *textCheck) add(p []byte) bool {
	if c.n > 0 {
		want := seqLen(c.tail[0])
		k := copy(c.tail[c.n:want], p)
		c.n += k
		p = p[k:]
		if c.n < want {
			return canStart(c.tail[:c.n])
		}
		if !utf8.Valid(c.tail[:c.n]) {
			return false
		}
		c.n = 0
	}
	cut := unfinished(p)
	if !utf8.Valid(p[:cut]) {
		return false
	}
	c.n = copy(c.tail[:], p[cut:])
	return canStart(c.tail[:c.n])
}

// end reports whether the message ended on a character boundary, and
// readies c for the next message.
func (c *textCheck) end() bool {
	ok := c.n == 0
	c.n = 0
	return ok
}

// seqLen is the length of the character that leading byte b starts, or 0
// if no valid character starts with b.
func seqLen(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b >= 0xc2 && b <= 0xdf:
		return 2
	case b >= 0xe0 && b <= 0xef:
		return 3
	case b >= 0xf0 && b <= 0xf4:
		return 4
	}
	return 0
}

// unfinished returns where a character cut off by the end of p starts, or
// len(p) if p ends on a boundary (or in bytes that are invalid anyway,
// which utf8.Valid then refuses).
func unfinished(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if p[i]&0xc0 == 0x80 {
			continue // a continuation byte: look further back
		}
		if n := seqLen(p[i]); n > 1 && i+n > len(p) {
			return i
		}
		break
	}
	return len(p)
}

// canStart reports whether the bytes of an unfinished character can be
// completed into a valid one: whether either extreme continuation byte
// completes it (the allowed ranges for the second byte touch one end).
func canStart(t []byte) bool {
	if len(t) == 0 {
		return true
	}
	want := seqLen(t[0])
	if want <= len(t) {
		return false
	}
	for _, pad := range []byte{0x80, 0xbf} {
		var b [utf8.UTFMax]byte
		copy(b[:], t)
		for i := len(t); i < want; i++ {
			b[i] = pad
		}
		if utf8.Valid(b[:want]) {
			return true
		}
	}
	return false
}
