package messages

import (
	"encoding/hex"
	"strconv"
	"testing"
)

func hexBytes(s string) ([]byte, error) { return hex.DecodeString(s) }

var (
	sinkBytes []byte
	sinkFrame Frame
	sinkReq   RequestHead
	sinkResp  ResponseHead
)

// TestZeroAllocs asserts the body hot path allocates nothing: framing a
// Data piece into a buffer that has room, and parsing it.
func TestZeroAllocs(t *testing.T) {
	payload := make([]byte, 16<<10)
	buf := make([]byte, 0, MaxFrame)
	whole := frame(TypeData, FlagEnd, testID, payload)
	tests := []struct {
		name string
		fn   func()
	}{
		{"PutHeader then payload", func() {
			b := buf[:HeaderSize+len(payload)]
			PutHeader(b, TypeData, 0, testID)
			copy(b[HeaderSize:], payload)
			sinkBytes = b
		}},
		{"AppendHeader then payload", func() {
			b := AppendHeader(buf[:0], TypeData, FlagEnd, testID)
			sinkBytes = append(b, payload...)
		}},
		{"Frame.Append", func() {
			sinkBytes = Frame{Type: TypeData, ID: testID, Payload: payload}.Append(buf[:0])
		}},
		{"Parse", func() {
			f, err := Parse(whole)
			if err != nil {
				panic(err)
			}
			sinkFrame = f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, tt.fn); got != 0 {
				t.Fatalf("got %v allocations per run, want 0", got)
			}
		})
	}
}

func BenchmarkEncodeData(b *testing.B) {
	for _, size := range []int{1 << 10, MaxChunk} {
		b.Run(sizeName(size), func(b *testing.B) {
			payload := make([]byte, size)
			buf := make([]byte, MaxFrame)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				PutHeader(buf, TypeData, 0, testID)
				n := copy(buf[HeaderSize:], payload)
				sinkBytes = buf[:HeaderSize+n]
			}
		})
	}
}

func BenchmarkParseData(b *testing.B) {
	for _, size := range []int{1 << 10, MaxChunk} {
		b.Run(sizeName(size), func(b *testing.B) {
			in := frame(TypeData, FlagEnd, testID, make([]byte, size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				f, err := Parse(in)
				if err != nil {
					b.Fatal(err)
				}
				sinkFrame = f
			}
		})
	}
}

func BenchmarkAppendRequestHead(b *testing.B) {
	h := typicalRequestHead()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		sinkBytes, err = AppendRequestHead(buf[:0], &h)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestHead(b *testing.B) {
	h := typicalRequestHead()
	in, err := AppendRequestHead(nil, &h)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		sinkReq, err = ParseRequestHead(in)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponseHead(b *testing.B) {
	h := typicalResponseHead()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		sinkBytes, err = AppendResponseHead(buf[:0], &h)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponseHead(b *testing.B) {
	h := typicalResponseHead()
	in, err := AppendResponseHead(nil, &h)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		sinkResp, err = ParseResponseHead(in)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func sizeName(n int) string { return strconv.Itoa(n>>10) + "KiB" }
