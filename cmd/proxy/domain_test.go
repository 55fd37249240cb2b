package main

import (
	"strings"
	"testing"
)

func TestCheckDomain(t *testing.T) {
	for _, ok := range []string{"localhost", "tunnel.example.com", "Tunnel.Example.COM.", "a-b.c1.io", "xn--bcher-kva.example"} {
		if err := checkDomain(ok); err != nil {
			t.Errorf("checkDomain(%q): %v, want it accepted", ok, err)
		}
	}
	for _, bad := range []string{"", "http://x", "https://tunnel.example.com", "x:80", "x/path", "10.0.0.1", "::1",
		"-x.com", "x-.com", "a..b", "under_score.com", "sp ace.com", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 101) + "com"} {
		err := checkDomain(bad)
		if err == nil || !strings.Contains(err.Error(), "--domain") || !strings.Contains(err.Error(), "want a DNS name") {
			t.Errorf("checkDomain(%q): got %v, want an error naming the flag and the form", bad, err)
		}
	}
}
