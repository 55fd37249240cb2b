package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
)

func TestPatternReadAndWriteToAgree(t *testing.T) {
	for _, n := range []int64{0, 1, patternPeriod - 1, patternPeriod, 3*patternPeriod + 12345} {
		var read, written bytes.Buffer
		buf := make([]byte, 7777) // not a divisor of the period
		if _, err := io.CopyBuffer(&read, struct{ io.Reader }{newPattern(n)}, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := newPattern(n).WriteTo(&written); err != nil {
			t.Fatal(err)
		}
		if int64(read.Len()) != n || !bytes.Equal(read.Bytes(), written.Bytes()) {
			t.Fatalf("n=%d: Read gave %d bytes, WriteTo %d, equal %v", n, read.Len(), written.Len(), bytes.Equal(read.Bytes(), written.Bytes()))
		}
		sum := sha256.Sum256(written.Bytes())
		if got, want := patternSum(n), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("patternSum(%d) = %s, want %s", n, got, want)
		}
	}
}

// A stream that lost a frame and repeated another of the same size has
// the right length but not the right hash.
func TestPatternHashSeesAShiftedFrame(t *testing.T) {
	const n, frame = 4 << 20, 32 << 10
	var b bytes.Buffer
	newPattern(n).WriteTo(&b)
	data := b.Bytes()
	shifted := append(append(append([]byte{}, data[:frame]...), data[2*frame:]...), data[n-frame:]...)
	sum := sha256.Sum256(shifted)
	if len(shifted) != n || hex.EncodeToString(sum[:]) == patternSum(n) {
		t.Errorf("a stream with one %d-byte frame lost and one repeated has the pattern's hash", frame)
	}
}
