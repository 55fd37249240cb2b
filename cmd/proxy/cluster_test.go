package main

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"keyhole/internal/sock"
)

// TestRedisOptions: the options a --redis URL carries are kept, the
// proxy's defaults fill only the others, and Sentinel takes passwords for
// the master and for the sentinels.
func TestRedisOptions(t *testing.T) {
	o, err := redisOptions("redis://:master-pw@s1:26379?addr=s2:26379&master_name=mymaster&sentinel_password=sentinel-pw&sentinel_username=watcher&pool_size=8&dial_timeout=3s&max_retries=4&db=2")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"addrs", len(o.Addrs), 2},
		{"master name", o.MasterName, "mymaster"},
		{"password", o.Password, "master-pw"},
		{"sentinel password", o.SentinelPassword, "sentinel-pw"},
		{"sentinel username", o.SentinelUsername, "watcher"},
		{"pool size", o.PoolSize, 8},
		{"dial timeout", o.DialTimeout, 3 * time.Second},
		{"max retries", o.MaxRetries, 4},
		{"db", o.DB, 2},
		{"read timeout (default)", o.ReadTimeout, time.Second},
		{"context timeouts", o.ContextTimeoutEnabled, true},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	d, err := redisOptions("redis://127.0.0.1:6379")
	if err != nil {
		t.Fatal(err)
	}
	if d.PoolSize != 64 || d.DialTimeout != time.Second || d.MaxRetries != 1 {
		t.Errorf("defaults: got pool %d, dial %v, retries %d; want 64, 1s, 1", d.PoolSize, d.DialTimeout, d.MaxRetries)
	}
}

// TestRedisDialer: the dialer go-redis is given opens sockets of package
// sock, and for rediss:// shakes hands with TLS, checking the node's
// certificate against its host.
func TestRedisDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	c, err := redisDialer(time.Second, nil)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*sock.Conn); !ok {
		t.Errorf("plain dial gave a %T, want a *sock.Conn", c)
	}
	echo(t, c)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	addr := srv.Listener.Addr().String()
	tc, err := redisDialer(time.Second, &tls.Config{RootCAs: roots})(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer tc.Close()
	// Without a server name tls.Client refuses to verify: the handshake
	// took the node's host, and its certificate matched it.
	if !tc.(*tls.Conn).ConnectionState().HandshakeComplete {
		t.Error("handshake not complete")
	}
	if _, err := redisDialer(time.Second, &tls.Config{})(t.Context(), "tcp", addr); err == nil {
		t.Error("a certificate from an unknown authority was accepted")
	}
}

func echo(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
}
