package client

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"keyhole/internal/link"
	"keyhole/messages"
)

// pieceReader returns its pieces one Read each, then EOF, and counts the
// Reads.
type pieceReader struct {
	sizes []int
	reads int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	r.reads++
	if len(r.sizes) == 0 {
		return 0, io.EOF
	}
	n := copy(p, bytes.Repeat([]byte{'p'}, r.sizes[0]))
	r.sizes = r.sizes[1:]
	return n, nil
}

// sent is one Data frame as the proxy received it: its size and End.
type sent struct {
	n   int
	end bool
}

func dataOf(t *testing.T, fs []messages.Frame, id messages.ID) []sent {
	t.Helper()
	var got []sent
	for _, f := range fs {
		if f.Type != messages.TypeData || f.ID != id {
			t.Errorf("got %v on %v, want Data on %v", f.Type, f.ID, id)
			continue
		}
		got = append(got, sent{len(f.Payload), f.End()})
	}
	return got
}

// TestRelayBody: a response body goes out as Data frames, whole chunks
// when its length is known and pieces as they arrive when not, End on the
// last; one that ends short of its length fails without an End; one that
// passes the cap stops after the piece that passed it.
func TestRelayBody(t *testing.T) {
	const max = messages.MaxChunk
	for _, tc := range []struct {
		name      string
		body      func() io.Reader
		length    int64
		maxBody   int64
		want      []sent
		wantTotal int64
		wantErr   string
	}{
		{"known length, chunks and a rest", func() io.Reader { return bytes.NewReader(make([]byte, 3*max+100)) }, 3*max + 100, math.MaxInt64,
			[]sent{{max, false}, {max, false}, {max, false}, {100, true}}, 3*max + 100, ""},
		{"known length, one chunk", func() io.Reader { return bytes.NewReader(make([]byte, max)) }, max, math.MaxInt64,
			[]sent{{max, true}}, max, ""},
		{"known length, a byte at a time from the service", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(make([]byte, max+1))) }, max + 1, math.MaxInt64,
			[]sent{{max, false}, {1, true}}, max + 1, ""},
		{"known length, nothing more is read", func() io.Reader { return bytes.NewReader(make([]byte, 500)) }, 300, math.MaxInt64,
			[]sent{{300, true}}, 300, ""},
		{"known length, short within a chunk", func() io.Reader { return bytes.NewReader(make([]byte, 100)) }, 200, math.MaxInt64,
			nil, 100, "ended after 100 of 200 bytes"},
		{"known length, short at a chunk's end", func() io.Reader { return bytes.NewReader(make([]byte, max)) }, max + 10, math.MaxInt64,
			[]sent{{max, false}}, max, "ended after 65536 of 65546 bytes"},
		{"known length, the service fails", func() io.Reader { return iotest.ErrReader(errors.New("connection reset")) }, 100, math.MaxInt64,
			nil, 0, "read response body: connection reset"},
		{"unknown length, as it arrives", func() io.Reader { return &pieceReader{sizes: []int{10, 0, 5000}} }, -1, math.MaxInt64,
			[]sent{{10, false}, {5000, false}, {0, true}}, 5010, ""},
		{"unknown length, last bytes with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(make([]byte, 300))) }, -1, math.MaxInt64,
			[]sent{{300, true}}, 300, ""},
		{"unknown length, large", func() io.Reader { return bytes.NewReader(make([]byte, 2*max+5)) }, -1, math.MaxInt64,
			[]sent{{max, false}, {max, false}, {5, false}, {0, true}}, 2*max + 5, ""},
		{"unknown length, empty", func() io.Reader { return strings.NewReader("") }, -1, math.MaxInt64,
			[]sent{{0, true}}, 0, ""},
		{"unknown length, exactly the cap", func() io.Reader { return &pieceReader{sizes: []int{1000, 1000}} }, -1, 2000,
			[]sent{{1000, false}, {1000, false}, {0, true}}, 2000, ""},
		{"unknown length, over the cap", func() io.Reader { return &pieceReader{sizes: []int{1000, 1000, 1000, 1000, 1000}} }, -1, 2500,
			[]sent{{1000, false}, {1000, false}, {1000, false}}, 3000, "over the proxy's cap of 2500 bytes"},
		// The piece that passes the cap never says the body is complete,
		// even when the service's body ends with it (DataErrReader
		// hands out 1,024 bytes a read, the last with EOF).
		{"unknown length, the last piece passes the cap", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(make([]byte, 3000))) }, -1, 2500,
			[]sent{{1024, false}, {1024, false}, {952, false}}, 3000, "over the proxy's cap of 2500 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, proxy := newLink(t, true, tc.maxBody)
			id := messages.ID{5, 1}
			st := openStream(t, s, id)
			r := tc.body()
			total, err := relayBody(st, r, tc.length, tc.maxBody)
			if total != tc.wantTotal {
				t.Errorf("got a total of %d, want %d", total, tc.wantTotal)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got error %v, want %q", err, tc.wantErr)
			}
			got := dataOf(t, proxy.upToMark(s), id)
			if len(got) != len(tc.want) {
				t.Fatalf("got pieces %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("piece %d: got %v, want %v", i, got[i], tc.want[i])
				}
			}
			if pr, ok := r.(*pieceReader); ok && tc.wantErr != "" && len(pr.sizes) != 2 {
				t.Errorf("the service was read %d times, want nothing read after the piece that passed the cap", pr.reads)
			}
		})
	}
}

// TestRelayBodyCredit: on a link of revision 2 a body is sent only as far
// as the stream's credit goes (the window, overdrawn by one frame), waits
// at zero, and goes on as the proxy grants more; on revision 1 nothing
// waits.
func TestRelayBodyCredit(t *testing.T) {
	const chunks = 30
	cost := link.Cost(messages.MaxChunk)
	for _, tc := range []struct {
		name   string
		credit bool
		grants []int64 // granted in turn, each after the sender has stopped
		want   []int   // chunks sent before each stop, then after each grant
	}{
		// 15 chunks leave 2,836 of the window: a 16th overdraws it.
		{"revision 2", true, []int64{4 * cost, 100 * cost}, []int{16, 4, chunks - 20}},
		{"revision 2, a grant short of zero", true, []int64{cost / 2, cost, 100 * cost}, []int{16, 0, 1, chunks - 17}},
		{"revision 1", false, nil, []int{chunks}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, proxy := newLink(t, tc.credit, math.MaxInt64)
			id := messages.ID{5, 2}
			st := openStream(t, s, id)
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := relayBody(st, bytes.NewReader(make([]byte, chunks*messages.MaxChunk)), chunks*messages.MaxChunk, math.MaxInt64)
				done <- result{n, err}
			}()
			for i, want := range tc.want {
				if i > 0 {
					proxy.send(messages.TypeCredit, 0, id, messages.AppendCredit(nil, uint32(tc.grants[i-1])))
				}
				for j := 0; j < want; j++ {
					if f := proxy.next(); f.Type != messages.TypeData || len(f.Payload) != messages.MaxChunk {
						t.Fatalf("step %d, chunk %d: got %v of %d bytes, want a whole Data chunk", i, j, f.Type, len(f.Payload))
					}
				}
				if i == len(tc.want)-1 {
					break
				}
				select {
				case f := <-proxy.frames:
					t.Fatalf("step %d: got a %v after %d chunks, want the sender waiting for credit", i, f.Type, want)
				case <-time.After(200 * time.Millisecond):
				}
			}
			select {
			case r := <-done:
				if r.err != nil || r.n != chunks*messages.MaxChunk {
					t.Errorf("got %d bytes, %v; want %d, nil", r.n, r.err, chunks*messages.MaxChunk)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("relayBody did not return")
			}
		})
	}
}

// TestRelayBodyStopsWaiting: a body waiting for credit ends at once when
// the proxy abandons the stream.
func TestRelayBodyStopsWaiting(t *testing.T) {
	s, proxy := newLink(t, true, math.MaxInt64)
	id := messages.ID{5, 3}
	st := openStream(t, s, id)
	done := make(chan error, 1)
	go func() {
		_, err := relayBody(st, bytes.NewReader(make([]byte, 30*messages.MaxChunk)), -1, math.MaxInt64)
		done <- err
	}()
	for i := 0; i < 16; i++ {
		proxy.next()
	}
	proxy.send(messages.TypeError, 0, id, (&messages.Status{Code: 499, Text: "visitor left"}).Append(nil))
	select {
	case err := <-done:
		if !errors.Is(err, errCanceled) {
			t.Errorf("got %v, want %v", err, errCanceled)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relayBody still waits for credit on a canceled stream")
	}
}

// TestRelayResponse: the head carries the status, the declared length
// and the header without hop-by-hop fields; a body of known length over
// the cap is refused with nothing sent; an empty one is a head with End;
// a small one goes out with its head; larger and unknown ones follow as
// Data.
func TestRelayResponse(t *testing.T) {
	const max = messages.MaxChunk
	for _, tc := range []struct {
		name      string
		typ       messages.Type
		status    int
		length    int64
		body      io.ReadCloser
		maxBody   int64
		wantHead  bool // a head is sent
		wantEnd   bool // the head carries End
		want      []sent
		wantTotal int64
		wantErr   string
	}{
		{"no body", messages.TypeHTTPResponse, 204, 0, http.NoBody, math.MaxInt64, true, true, nil, 0, ""},
		{"declared 0", messages.TypeHTTPResponse, 200, 0, io.NopCloser(strings.NewReader("")), math.MaxInt64, true, true, nil, 0, ""},
		{"small, known length", messages.TypeHTTPResponse, 200, 100, io.NopCloser(bytes.NewReader(make([]byte, 100))), math.MaxInt64, true, false,
			[]sent{{100, true}}, 100, ""},
		{"small, short of its length", messages.TypeHTTPResponse, 200, 100, io.NopCloser(bytes.NewReader(make([]byte, 60))), math.MaxInt64, false, false,
			nil, 0, "read response body"},
		{"one chunk and a byte", messages.TypeHTTPResponse, 200, max + 1, io.NopCloser(bytes.NewReader(make([]byte, max+1))), math.MaxInt64, true, false,
			[]sent{{max, false}, {1, true}}, max + 1, ""},
		{"unknown length", messages.TypeHTTPResponse, 200, -1, io.NopCloser(strings.NewReader("hello")), math.MaxInt64, true, false,
			[]sent{{5, false}, {0, true}}, 5, ""},
		{"declared over the cap", messages.TypeHTTPResponse, 200, 2001, io.NopCloser(bytes.NewReader(make([]byte, 2001))), 2000, false, false,
			nil, 0, "response of 2001 bytes over the proxy's cap of 2000"},
		{"declared at the cap", messages.TypeHTTPResponse, 200, 2000, io.NopCloser(bytes.NewReader(make([]byte, 2000))), 2000, true, false,
			[]sent{{2000, true}}, 2000, ""},
		{"a refused WebSocket", messages.TypeWSResponse, 403, 9, io.NopCloser(strings.NewReader("forbidden")), math.MaxInt64, true, false,
			[]sent{{9, true}}, 9, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, proxy := newLink(t, true, tc.maxBody)
			id := messages.ID{5, 4}
			st := openStream(t, s, id)
			resp := &http.Response{
				StatusCode:    tc.status,
				ContentLength: tc.length,
				Header:        http.Header{"Connection": {"X-Secret"}, "X-Secret": {"1"}, "Keep-Alive": {"timeout=5"}, "X-Kept": {"yes"}},
				Body:          tc.body,
			}
			total, err := s.relayResponseAs(st, resp, tc.typ)
			if total != tc.wantTotal {
				t.Errorf("got a total of %d, want %d", total, tc.wantTotal)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got error %v, want %q", err, tc.wantErr)
			}
			fs := proxy.upToMark(s)
			if !tc.wantHead {
				if len(fs) != 0 {
					t.Fatalf("got %d frames, want none", len(fs))
				}
				return
			}
			if len(fs) == 0 || fs[0].Type != tc.typ {
				t.Fatalf("got %d frames, want a %v first", len(fs), tc.typ)
			}
			if fs[0].End() != tc.wantEnd {
				t.Errorf("got End %v on the head, want %v", fs[0].End(), tc.wantEnd)
			}
			head, err := messages.ParseResponseHead(fs[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if head.Status != tc.status || head.ContentLength != tc.length {
				t.Errorf("got head %d, length %d; want %d, %d", head.Status, head.ContentLength, tc.status, tc.length)
			}
			for _, k := range []string{"Connection", "X-Secret", "Keep-Alive"} {
				if v, ok := head.Header[k]; ok {
					t.Errorf("got %s: %q in the head, want it removed", k, v)
				}
			}
			if head.Header.Get("X-Kept") != "yes" {
				t.Errorf("got X-Kept %q, want %q", head.Header.Get("X-Kept"), "yes")
			}
			got := dataOf(t, fs[1:], id)
			if len(got) != len(tc.want) {
				t.Fatalf("got pieces %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("piece %d: got %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
