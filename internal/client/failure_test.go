package client_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/client"
	"keyhole/internal/proxy"
	"keyhole/internal/syncbuf"
	"keyhole/messages"
)

// run runs a client of proxyURL for up to d and returns what Run returned
// and the log.
func run(t *testing.T, proxyURL string, d time.Duration, retry bool) (log string, err error) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	var buf syncbuf.Buffer
	c, err := client.New(client.Config{
		Proxy:          proxyURL,
		Target:         "http://127.0.0.1:1",
		Key:            key,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		RetryPermanent: retry,
		Logger:         slog.New(slog.NewTextHandler(&buf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err = c.Run(ctx)
	return buf.String(), err
}

// startProxy serves a real proxy on a loopback port.
func startProxy(t *testing.T, cfg proxy.Config) (*proxy.Server, string) {
	t.Helper()
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return srv, "ws://" + hs.Listener.Addr().String()
}

// A failure that trying again will not mend ends Run at once with one
// PermanentError naming the cause and the fix.
func TestRunStopsOnPermanentFailures(t *testing.T) {
	_, refusing := startProxy(t, proxy.Config{Allow: func(string) bool { return false }})
	notProxy := httptest.NewServer(http.NotFoundHandler())
	defer notProxy.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer page.Close()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the handshake errors are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	otherVersion := wsServer(t, func(ws *websocket.Conn) {
		f := messages.Frame{Type: messages.TypeChallenge}.Append(nil)
		f[0] = messages.Version + 1
		ws.WriteMessage(websocket.BinaryMessage, f)
		time.Sleep(time.Second)
	})
	for _, tc := range []struct {
		name, proxy string
		cause, fix  string
	}{
		{"refused key", refusing, "does not allow this key (403)", "--allow-keys"},
		{"not a keyhole proxy (404)", "ws://" + notProxy.Listener.Addr().String(), "not a keyhole proxy", "apex host"},
		{"not a keyhole proxy (200)", "ws://" + page.Listener.Addr().String(), "not a keyhole proxy", "apex host"},
		{"ws:// to a TLS port", "ws://" + tlsSrv.Listener.Addr().String(), "TLS port with ws://", "wss://"},
		{"wss:// to a plain port", "wss://" + notProxy.Listener.Addr().String(), "plain-HTTP port with wss://", "ws://"},
		{"another protocol version", otherVersion, "does not speak this client's protocol", "same protocol version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			log, err := run(t, tc.proxy, 10*time.Second, false)
			var perm *client.PermanentError
			if !errors.As(err, &perm) {
				t.Fatalf("Run: got %v, want a PermanentError\nlog:\n%s", err, log)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("Run gave up after %v, want at once", took)
			}
			if !strings.Contains(perm.Cause, tc.cause) || !strings.Contains(perm.Fix, tc.fix) {
				t.Errorf("got cause %q, fix %q; want them to name %q and %q", perm.Cause, perm.Fix, tc.cause, tc.fix)
			}
			if msg := err.Error(); strings.Count(msg, "registration refused") > 1 {
				t.Errorf("doubled prefix in %q", msg)
			}
			if strings.Contains(log, "retrying") || strings.Contains(log, "link lost") {
				t.Errorf("log says it retries or lost a link:\n%s", log)
			}
		})
	}
}

// With RetryPermanent the client keeps trying a refused key, logging the
// cause each time; a proxy that is out of reach or draining is tried
// again, without RetryPermanent too, and said to be "connecting", never
// a "link lost".
func TestRunRetriesTemporaryFailures(t *testing.T) {
	srv, refusing := startProxy(t, proxy.Config{Allow: func(string) bool { return false }})
	log, err := run(t, refusing, 500*time.Millisecond, true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("refused key with RetryPermanent: Run returned %v, want it to keep trying until the context ends", err)
	}
	if n := srv.Stats().LinksRefused.Load(); n < 2 {
		t.Errorf("refused key with RetryPermanent: %d attempts, want several", n)
	}
	if !strings.Contains(log, "cannot register; retrying") || !strings.Contains(log, "fix=") {
		t.Errorf("refused key with RetryPermanent: log does not give the cause and fix:\n%s", log)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "ws://" + ln.Addr().String()
	ln.Close()
	draining, drainingURL := startProxy(t, proxy.Config{})
	draining.Drain(canceled())
	for name, url := range map[string]string{"nothing listening": closed, "draining proxy (503)": drainingURL} {
		log, err := run(t, url, 300*time.Millisecond, false)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Run returned %v, want it to keep trying", name, err)
		}
		if !strings.Contains(log, "connecting failed; retrying") || strings.Contains(log, "link lost") {
			t.Errorf("%s: log should say connecting, never link lost:\n%s", name, log)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// wsServer upgrades every request and hands the socket to serve.
func wsServer(t *testing.T, serve func(*websocket.Conn)) string {
	t.Helper()
	var up websocket.Upgrader
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		serve(ws)
	}))
	t.Cleanup(hs.Close)
	return "ws://" + hs.Listener.Addr().String()
}

// A proxy over its registration limits answers 429 with Retry-After: the
// client waits that long before it tries again, however short its own
// backoff.
func TestRunHonoursRetryAfter(t *testing.T) {
	var mu sync.Mutex // protects attempts
	var attempts []time.Time
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		mu.Unlock()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many registrations", http.StatusTooManyRequests)
	}))
	t.Cleanup(hs.Close)
	if _, err := run(t, "ws://"+hs.Listener.Addr().String(), 2500*time.Millisecond, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v, want it to keep trying until the context ends", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) < 2 || len(attempts) > 3 {
		t.Fatalf("got %d attempts in 2.5 s, want 2 or 3 (one a second)", len(attempts))
	}
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < time.Second {
			t.Errorf("attempt %d came %v after the one before, want at least the 1 s Retry-After asked", i+1, gap)
		}
	}
}
