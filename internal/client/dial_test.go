package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/identity"
	"keyhole/internal/link"
	"keyhole/limiter"
	"keyhole/messages"
)

// fakeProxy answers one link upgrade: it sends challenge (a Challenge if
// nil), checks the registration, and answers with answer. It reports the
// Keyhole-Revision the client asked for and any error.
func fakeProxy(t *testing.T, challenge []byte, answer func(domain string) []byte) (url string, asked <-chan string, fail <-chan error) {
	t.Helper()
	askedc := make(chan string, 1)
	failc := make(chan error, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		askedc <- r.Header.Get(messages.RevisionHeader)
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			failc <- err
			return
		}
		defer ws.Close()
		ch := messages.Challenge{Nonce: [messages.NonceSize]byte{9, 8, 7}, Domain: "tunnel.test"}
		if challenge == nil {
			p, _ := ch.Append(nil)
			challenge = messages.AppendHeader(nil, messages.TypeChallenge, 0, messages.ID{})
			challenge = append(challenge, p...)
		}
		ws.WriteMessage(websocket.BinaryMessage, challenge)
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			failc <- err
			return
		}
		f, err := messages.Parse(data)
		if err != nil {
			failc <- err
			return
		}
		if f.Type == messages.TypeError { // the client refused the challenge
			failc <- &frameError{f}
			return
		}
		req, err := messages.ParseRegistrationRequest(f.Payload)
		if err == nil {
			_, err = identity.Verify(&req, ch.Domain, ch.Nonce, time.Now())
		}
		if err != nil {
			failc <- err
			return
		}
		ws.WriteMessage(websocket.BinaryMessage, answer(ch.Domain))
		failc <- nil
		ws.ReadMessage() // until the client closes
	}))
	t.Cleanup(hs.Close)
	return hs.URL, askedc, failc
}

// frameError is a frame the client sent where the fake proxy expected a
// registration.
type frameError struct{ f messages.Frame }

func (e *frameError) Error() string { return "client sent " + e.f.Type.String() }

func registered(rr messages.RegistrationResponse) func(string) []byte {
	return func(domain string) []byte {
		p, err := rr.Append(nil)
		if err != nil {
			panic(err)
		}
		return append(messages.AppendHeader(nil, messages.TypeRegistrationResponse, 0, messages.ID{}), p...)
	}
}

// TestDial: the client asks for link revision 2 on its upgrade, answers
// the challenge with a valid signature, and takes from the answer whether
// HTTP bodies carry credit and the proxy's cap; a refusal is ErrRefused
// with the proxy's text.
func TestDial(t *testing.T) {
	const url = "http://abc.tunnel.test"
	for _, tc := range []struct {
		name        string
		answer      func(string) []byte
		wantCredit  bool
		wantMaxBody int64
		wantErr     error
		wantText    string
	}{
		{"revision 2 with a cap", registered(messages.RegistrationResponse{Hostname: "abc.tunnel.test", URL: url, Revision: 2, MaxBody: 100000}), true, 100000, nil, ""},
		{"revision 2, no cap", registered(messages.RegistrationResponse{Hostname: "abc.tunnel.test", URL: url, Revision: 2, MaxBody: 0}), true, math.MaxInt64, nil, ""},
		{"revision 2, a cap past int64", registered(messages.RegistrationResponse{Hostname: "abc.tunnel.test", URL: url, Revision: 2, MaxBody: math.MaxUint64}), true, math.MaxInt64, nil, ""},
		{"revision 1", registered(messages.RegistrationResponse{Hostname: "abc.tunnel.test", URL: url}), false, limiter.DefaultMaxBody, nil, ""},
		{"refused", func(string) []byte {
			st := messages.Status{Code: 403, Text: "key not allowed"}
			return append(messages.AppendHeader(nil, messages.TypeError, 0, messages.ID{}), st.Append(nil)...)
		}, false, 0, ErrRefused, "key not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, asked, fail := fakeProxy(t, nil, tc.answer)
			_, key, _ := ed25519.GenerateKey(nil)
			var ready string
			c, err := New(Config{Proxy: proxy, Target: "http://127.0.0.1:9", Key: key, Ready: func(u string) { ready = u }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := c.dial(ctx)
			if got := <-asked; got != "2" {
				t.Errorf("got %s %q on the upgrade, want %q", messages.RevisionHeader, got, "2")
			}
			if err := <-fail; err != nil {
				t.Fatalf("the proxy saw: %v", err)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("got %v, want %v with %q", err, tc.wantErr, tc.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.conn.Close(nil)
			if s.credit != tc.wantCredit || s.maxBody != tc.wantMaxBody {
				t.Errorf("got credit %v, max body %d; want %v, %d", s.credit, s.maxBody, tc.wantCredit, tc.wantMaxBody)
			}
			if s.url != url || ready != url {
				t.Errorf("got url %q, Ready(%q); want %q", s.url, ready, url)
			}
		})
	}
}

// TestDialAnotherVersion: a challenge of another protocol version is
// answered with an Error 505 naming the versions before the client gives
// up, and dial fails with ErrVersion.
func TestDialAnotherVersion(t *testing.T) {
	challenge := messages.AppendHeader(nil, messages.TypeChallenge, 0, messages.ID{})
	challenge[0] = messages.Version + 1
	proxy, _, fail := fakeProxy(t, challenge, nil)
	_, key, _ := ed25519.GenerateKey(nil)
	c, err := New(Config{Proxy: proxy, Target: "http://127.0.0.1:9", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.dial(ctx); !errors.Is(err, messages.ErrVersion) {
		t.Errorf("dial: got %v, want %v", err, messages.ErrVersion)
	}
	var fe *frameError
	if err := <-fail; !errors.As(err, &fe) {
		t.Fatalf("the proxy got %v, want an Error frame", err)
	}
	st, _ := messages.ParseStatus(fe.f.Payload)
	if st.Code != link.StatusVersion || !strings.Contains(st.Text, "version") {
		t.Errorf("got Error %d %q, want %d naming the version", st.Code, st.Text, link.StatusVersion)
	}
}
