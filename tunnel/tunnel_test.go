package tunnel_test

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"

	"keyhole/tunnel"
)

func TestNewRefuses(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	h := http.NotFoundHandler()
	cases := []struct {
		name string
		cfg  tunnel.Config
		want string
	}{
		{"no service", tunnel.Config{Key: key}, "no Handler and no Target"},
		{"handler and target", tunnel.Config{Key: key, Handler: h, Target: "3000"}, "Handler with a Target"},
		{"handler and transport", tunnel.Config{Key: key, Handler: h, Transport: http.DefaultTransport}, "Handler with a Target or a Transport"},
		{"no key", tunnel.Config{Handler: h}, "no key"},
		{"bad proxy", tunnel.Config{Key: key, Handler: h, Proxy: "ftp://x"}, "proxy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tunnel.New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}
