package client

import "testing"

func TestTargetURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"3000", "http://127.0.0.1:3000"},
		{":3000", "http://127.0.0.1:3000"},
		{"localhost:3000", "http://localhost:3000"},
		{"app:8080/public", "http://app:8080/public"},
		{"http://127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"https://svc.internal", "https://svc.internal"},
		{"[::1]:3000", "http://[::1]:3000"},
		{"70000", ""},
		{"0", ""},
		{":x", ""},
		{"ftp://host", ""},
		{"http://", ""},
		{"localhost:99999", ""},
		{"", ""},
	} {
		u, err := TargetURL(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("TargetURL(%q): got %v, want an error", tc.in, u)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("TargetURL(%q): got %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestProxyURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "ws://127.0.0.1:8080"},
		{"tunnel.example.com", "ws://tunnel.example.com"},
		{"wss://tunnel.example.com", "wss://tunnel.example.com"},
		{"https://tunnel.example.com", "wss://tunnel.example.com"},
		{"http://127.0.0.1:8080", "ws://127.0.0.1:8080"},
		{"ftp://x", ""},
		{"ws://", ""},
	} {
		u, err := ProxyURL(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ProxyURL(%q): got %v, want an error", tc.in, u)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("ProxyURL(%q): got %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}
