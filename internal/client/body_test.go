package client

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"keyhole/internal/link"
	"keyhole/messages"
)

// piece is one frame of a request body as the proxy sends it.
type piece struct {
	typ messages.Type // 0 means Data
	n   int           // payload bytes (a Credit's increment for TypeCredit)
	end bool
}

func (p piece) send(proxy *proxyEnd, id messages.ID, fill byte) {
	typ := p.typ
	if typ == 0 {
		typ = messages.TypeData
	}
	var flags messages.Flags
	if p.end {
		flags = messages.FlagEnd
	}
	payload := bytes.Repeat([]byte{fill}, p.n)
	if typ == messages.TypeCredit {
		payload = messages.AppendCredit(nil, uint32(p.n))
	}
	proxy.send(typ, flags, id, payload)
}

// pieces returns count Data pieces of n bytes, the last with End if end.
func pieces(count, n int, end bool) []piece {
	ps := make([]piece, count)
	for i := range ps {
		ps[i] = piece{n: n}
	}
	ps[count-1].end = end
	return ps
}

// TestBodyLength: a request body reads whole when its pieces add up to
// the declared length (or end, when none was declared) within the
// proxy's cap; shorter, longer, over the cap or with a frame that has no
// place in a body, it fails, so that the service sees an aborted request.
func TestBodyLength(t *testing.T) {
	for _, credit := range []bool{false, true} {
		for _, tc := range []struct {
			name    string
			length  int64
			maxBody int64
			pieces  []piece
			want    int    // bytes read
			wantErr string // in the error; "" for none
		}{
			{"exact, one piece", 1000, math.MaxInt64, []piece{{n: 1000, end: true}}, 1000, ""},
			{"exact, three pieces", 3000, math.MaxInt64, pieces(3, 1000, true), 3000, ""},
			{"exact, then an empty End", 2000, math.MaxInt64, append(pieces(2, 1000, false), piece{end: true}), 2000, ""},
			{"exact, whole chunks", 3 * messages.MaxChunk, math.MaxInt64, pieces(3, messages.MaxChunk, true), 3 * messages.MaxChunk, ""},
			{"exactly the cap", 3000, 3000, pieces(3, 1000, true), 3000, ""},
			{"no length declared", -1, math.MaxInt64, append(pieces(5, 777, false), piece{end: true}), 5 * 777, ""},
			{"empty, no length declared", -1, math.MaxInt64, []piece{{end: true}}, 0, ""},
			{"shorter than declared", 3000, math.MaxInt64, pieces(2, 1000, true), 1000, "request body of 2000 bytes, 3000 declared"},
			{"shorter, by an empty End", 3000, math.MaxInt64, append(pieces(2, 1000, false), piece{end: true}), 2000, "2000 bytes, 3000 declared"},
			{"longer than declared", 1500, math.MaxInt64, pieces(2, 1000, true), 1000, "request body of 2000 bytes, 1500 declared"},
			// The last declared byte waits for the End, so a body that runs on
			// never reaches the service complete.
			{"more after the declared length", 1000, math.MaxInt64, []piece{{n: 1000}, {n: 1, end: true}}, 0, "past its declared 1000 bytes"},
			{"over the cap, no length declared", -1, 2500, pieces(3, 1000, true), 2000, "over the proxy's cap of 2500 bytes"},
			{"over the cap, declared within the cap", 3000, 2500, pieces(3, 1000, true), 2000, "cap of 2500"},
			{"a WSMessage in the body", -1, math.MaxInt64, []piece{{n: 10}, {typ: messages.TypeWSMessage, n: 10, end: true}}, 10, "WSMessage in a request body"},
			{"a Credit among the pieces", 2000, math.MaxInt64, []piece{{n: 1000}, {typ: messages.TypeCredit, n: 5000}, {n: 1000, end: true}}, 2000, ""},
		} {
			name := map[bool]string{false: "revision 1/", true: "revision 2/"}[credit] + tc.name
			t.Run(name, func(t *testing.T) {
				s, proxy := newLink(t, credit, tc.maxBody)
				id := messages.ID{4, 2}
				st := openStream(t, s, id)
				for i, p := range tc.pieces {
					p.send(proxy, id, byte(i+1))
				}
				r := &body{st: st, length: tc.length}
				got, err := io.ReadAll(r)
				r.Close()
				if len(got) != tc.want {
					t.Errorf("got %d bytes, want %d", len(got), tc.want)
				}
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Errorf("got error %v, want %q", err, tc.wantErr)
				}
				if tc.wantErr == "" && len(tc.pieces) > 0 && tc.pieces[0].n > 0 && (got[0] != 1 || got[len(got)-1] == 0) {
					t.Errorf("the body's bytes changed")
				}
			})
		}
	}
}

// TestBodyGrantsCredit: on a link of revision 2 the body grants the
// proxy credit for the frames the service's transport has taken whole,
// in increments of at least a quarter window, never for the last piece
// (the stream's body is over); on revision 1 it grants nothing.
func TestBodyGrantsCredit(t *testing.T) {
	chunk := uint32(link.Cost(messages.MaxChunk)) // 69,716
	kib := uint32(link.Cost(1000))                // 1,084
	for _, tc := range []struct {
		name   string
		credit bool
		pieces []piece
		want   []uint32
	}{
		{"chunks: a grant every four", true, append(pieces(9, messages.MaxChunk, false), piece{end: true}), []uint32{4 * chunk, 4 * chunk}},
		{"small pieces: a grant every 242", true, append(pieces(500, 1000, false), piece{end: true}), []uint32{242 * kib, 242 * kib}},
		{"the last piece is not granted", true, pieces(4, messages.MaxChunk, true), nil},
		{"a quarter window just reached", true, append(pieces(4, messages.MaxChunk, false), piece{end: true}), []uint32{4 * chunk}},
		{"revision 1 grants nothing", false, append(pieces(9, messages.MaxChunk, false), piece{end: true}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, proxy := newLink(t, tc.credit, math.MaxInt64)
			id := messages.ID{4, 3}
			st := openStream(t, s, id)
			for i, p := range tc.pieces {
				p.send(proxy, id, byte(i))
			}
			r := &body{st: st, length: -1}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
			r.Close()
			got := credits(t, proxy.upToMark(s), id)
			if len(got) != len(tc.want) {
				t.Fatalf("got grants %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("grant %d: got %d, want %d", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestBodyGrantsWhatWasTaken: the credit for a frame is granted only
// once the service's transport has taken all of it and asks for more,
// never while part of it is still held.
func TestBodyGrantsWhatWasTaken(t *testing.T) {
	s, proxy := newLink(t, true, math.MaxInt64)
	id := messages.ID{4, 4}
	st := openStream(t, s, id)
	for _, p := range append(pieces(5, messages.MaxChunk, false), piece{end: true}) {
		p.send(proxy, id, 1)
	}
	r := &body{st: st, length: -1}
	defer r.Close()
	for _, step := range []struct {
		name string
		read int
		want []uint32
	}{
		{"three frames and all but a byte of the fourth", 4*messages.MaxChunk - 1, nil},
		{"the fourth frame's last byte", 1, nil},
		{"the first byte of the fifth frame", 1, []uint32{uint32(4 * link.Cost(messages.MaxChunk))}},
		{"the rest of the fifth", messages.MaxChunk - 1, nil},
	} {
		if _, err := io.ReadFull(r, make([]byte, step.read)); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := credits(t, proxy.upToMark(s), id)
		if len(got) != len(step.want) || len(got) > 0 && got[0] != step.want[0] {
			t.Errorf("after %s: got grants %v, want %v", step.name, got, step.want)
		}
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after the End: got %d, %v, want 0, EOF", n, err)
	}
}

// TestBodyCanceled: a body waiting for its next piece fails at once when
// the proxy abandons the stream with an Error.
func TestBodyCanceled(t *testing.T) {
	s, proxy := newLink(t, true, math.MaxInt64)
	id := messages.ID{4, 5}
	st := openStream(t, s, id)
	proxy.send(messages.TypeData, 0, id, []byte("partial"))
	proxy.send(messages.TypeError, 0, id, (&messages.Status{Code: 504, Text: "request timed out"}).Append(nil))
	got, err := io.ReadAll(&body{st: st, length: 100})
	if !errors.Is(err, errCanceled) {
		t.Errorf("got %v, want %v", err, errCanceled)
	}
	if string(got) != "partial" && len(got) != 0 {
		t.Errorf("got %q before the cancel", got)
	}
}
