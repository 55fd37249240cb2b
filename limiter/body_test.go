package limiter

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// countingReader counts the bytes its source yields and, if chunk > 0,
// yields at most chunk bytes per Read.
type countingReader struct {
	r     io.Reader
	chunk int
	n     int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestCappedReader(t *testing.T) {
	tests := []struct {
		name    string
		size    int64 // bytes the source holds
		max     int64
		chunk   int // source bytes per Read, 0 for as many as asked
		bufSize int // caller's buffer, 0 for io.ReadAll
		wantErr error
	}{
		{"empty", 0, 10, 0, 0, nil},
		{"under", 9, 10, 0, 0, nil},
		{"exactly max", 10, 10, 0, 0, nil},
		{"max plus one", 11, 10, 0, 0, ErrBodyTooLarge},
		{"far over", 1 << 20, 10, 0, 0, ErrBodyTooLarge},
		{"max zero, empty", 0, 0, 0, 0, nil},
		{"max zero, one byte", 1, 0, 0, 0, ErrBodyTooLarge},
		{"negative max acts as zero", 1, -5, 0, 0, ErrBodyTooLarge},
		{"one-byte source reads, exactly max", 100, 100, 1, 0, nil},
		{"one-byte source reads, over", 101, 100, 1, 0, ErrBodyTooLarge},
		{"one-byte caller reads, exactly max", 100, 100, 0, 1, nil},
		{"one-byte caller reads, over", 101, 100, 0, 1, ErrBodyTooLarge},
		{"huge caller buffer, exactly max", DefaultMaxBody, DefaultMaxBody, 0, 4 << 20, nil},
		{"huge caller buffer, over", 4 << 20, DefaultMaxBody, 0, 4 << 20, ErrBodyTooLarge},
		{"default cap plus one", DefaultMaxBody + 1, DefaultMaxBody, 7919, 32 << 10, ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bytes.Repeat([]byte("0123456789"), int(tt.size/10)+1)[:tt.size]
			counter := &countingReader{r: bytes.NewReader(src), chunk: tt.chunk}
			cr := NewCappedReader(counter, tt.max)

			got, err := readAll(cr, tt.bufSize)

			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			wantLen := min(tt.size, max(tt.max, 0))
			if !bytes.Equal(got, src[:wantLen]) {
				t.Errorf("bytes: got %d bytes, want the first %d of the source", len(got), wantLen)
			}
			if cr.N() != wantLen {
				t.Errorf("N(): got %d, want %d", cr.N(), wantLen)
			}
			if limit := max(tt.max, 0) + 1; counter.n > limit {
				t.Errorf("bytes read from source: got %d, want at most %d", counter.n, limit)
			}
			if tt.wantErr != nil {
				if n, err := cr.Read(make([]byte, 8)); n != 0 || !errors.Is(err, ErrBodyTooLarge) {
					t.Errorf("Read after overflow: got (%d, %v), want (0, ErrBodyTooLarge)", n, err)
				}
			}
		})
	}
}

// readAll reads r to the end with io.ReadAll, or with a buffer of bufSize.
func readAll(r io.Reader, bufSize int) ([]byte, error) {
	if bufSize == 0 {
		return io.ReadAll(r)
	}
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestCappedReaderPassesSourceErrors(t *testing.T) {
	boom := errors.New("boom")
	cr := NewCappedReader(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 10)
	got, err := io.ReadAll(cr)
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Errorf("ReadAll: got (%q, %v), want (%q, %v)", got, err, "abc", boom)
	}
}

func TestCappedReaderIsAReader(t *testing.T) {
	const body = "hello, keyhole"
	if err := iotest.TestReader(NewCappedReader(strings.NewReader(body), int64(len(body))), []byte(body)); err != nil {
		t.Errorf("iotest.TestReader: got %v, want nil", err)
	}
}

func TestCheckLength(t *testing.T) {
	tests := []struct {
		name          string
		contentLength int64
		max           int64
		wantErr       bool
	}{
		{"unknown length", -1, DefaultMaxBody, false},
		{"empty", 0, DefaultMaxBody, false},
		{"exactly max", DefaultMaxBody, DefaultMaxBody, false},
		{"max plus one", DefaultMaxBody + 1, DefaultMaxBody, true},
		{"zero cap, empty", 0, 0, false},
		{"zero cap, one byte", 1, 0, true},
		{"negative cap acts as zero", 0, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLength(tt.contentLength, tt.max)
			if got := errors.Is(err, ErrBodyTooLarge); got != tt.wantErr || (!tt.wantErr && err != nil) {
				t.Errorf("CheckLength(%d, %d) = %v, want ErrBodyTooLarge %v", tt.contentLength, tt.max, err, tt.wantErr)
			}
		})
	}
}
