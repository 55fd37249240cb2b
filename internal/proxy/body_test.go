package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/link"
	"keyhole/messages"
)

// endBlocks is an upstream whose send takes every frame but the body's
// last, which it holds until ctx ends: a sender that has read the whole
// body then waits on its link, not on the visitor.
type endBlocks struct {
	upstream
	gotEnd chan struct{}
}

func (u *endBlocks) send(ctx context.Context, b *link.Buffer) error {
	f, err := messages.Parse(b.B)
	b.Free()
	if err != nil || !f.End() {
		return err
	}
	close(u.gotEnd)
	<-ctx.Done()
	return ctx.Err()
}

// TestBodyEndedKeepsConnection: ending the exchange of a request whose
// body was read to its end, while its sender still waits on the link,
// leaves the visitor's connection as it was. A read deadline set to wake
// the sender would fail net/http's own background read of the connection
// (which starts once the body has ended), and with it the context of
// every later request on that connection.
func TestBodyEndedKeepsConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			if r.Context().Err() != nil {
				http.Error(w, "canceled", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok")
			return
		}
		b := newRequestBody(w, r, NoCap, 5*time.Second)
		defer b.release()
		up := &endBlocks{gotEnd: make(chan struct{})}
		st := newStream(false, new(atomic.Int64))
		ctx, cancel := context.WithCancel(context.Background())
		b.start(ctx, up, st, func(error) {}, func() {})
		select {
		case <-up.gotEnd:
		case <-time.After(5 * time.Second):
			t.Error("the body's last frame never came")
		}
		io.WriteString(w, "taken")
		cancel()
		b.wait()
		// What the proxy does after an exchange (logs, metrics) gives
		// net/http's background read the time to see a deadline.
		time.Sleep(50 * time.Millisecond)
	}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	resp, err := hc.Post(srv.URL, "application/octet-stream", bytes.NewReader(make([]byte, 200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "taken" {
		t.Fatalf("upload: got %d %q, want 200 taken", resp.StatusCode, got)
	}
	resp, err = hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "ok" {
		t.Fatalf("the next request on the connection: got %d %q, want 200 ok", resp.StatusCode, got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want the one kept alive", n)
	}
}
