package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
)

// patternPeriod is the length of the cycle of the bytes the transfers
// send: a prime, so that no frame or buffer size is a multiple of it and
// a lost or repeated frame changes the stream's hash.
const patternPeriod = 1<<20 + 7

// patternCycle is one cycle of pseudo-random bytes, the same in every
// process of the benchmark.
var patternCycle = func() []byte {
	b := make([]byte, patternPeriod)
	rand.NewChaCha8([32]byte{'k', 'e', 'y', 'h', 'o', 'l', 'e'}).Read(b)
	return b
}()

// pattern reads n bytes of patternCycle repeated, without copying when
// written to a writer.
type pattern struct{ off, n int64 }

func newPattern(n int64) *pattern { return &pattern{n: n} }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	src := p.next(int64(len(b)))
	n := copy(b, src)
	p.off += int64(n)
	return n, nil
}

// WriteTo writes the rest of the pattern to w in slices of the cycle.
func (p *pattern) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for p.off < p.n {
		n, err := w.Write(p.next(256 << 10))
		p.off += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// next is the cycle from the current offset, at most limit bytes and no
// further than the end of the cycle or of the pattern.
func (p *pattern) next(limit int64) []byte {
	at := p.off % patternPeriod
	n := min(limit, patternPeriod-at, p.n-p.off)
	return patternCycle[at : at+n]
}

// patternSum is the hex SHA-256 of the first n bytes of the pattern.
func patternSum(n int64) string {
	h := sha256.New()
	newPattern(n).WriteTo(h)
	return hex.EncodeToString(h.Sum(nil))
}
