package client

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TargetURL reads a target as people type one: a port alone ("3000" or
// ":3000") is http://127.0.0.1:port, and host:port without a scheme is
// http://host:port; anything else must be an http:// or https:// URL with
// a host.
func TargetURL(s string) (*url.URL, error) {
	errWant := errors.New("want a port (3000), host:port (localhost:3000) or a URL (http://127.0.0.1:3000)")
	if port, ok := strings.CutPrefix(s, ":"); ok || allDigits(s) {
		if !isPort(port) {
			return nil, errWant
		}
		s = "http://" + net.JoinHostPort("127.0.0.1", port)
	} else if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errWant
	}
	if p := u.Port(); p != "" && !isPort(p) {
		return nil, errWant
	}
	return u, nil
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isPort reports whether s is a TCP port number, 1 to 65535.
func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

// ProxyURL reads a proxy address: ws:// or wss:// (http:// and https://
// taken as those), and host:port without a scheme as ws://host:port.
func ProxyURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("want a URL such as wss://tunnel.example.com or ws://127.0.0.1:8080")
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, errors.New("want ws:// or wss:// (wss:// for a proxy behind TLS)")
	}
	if u.Host == "" {
		return nil, errors.New("no host; want a URL such as wss://tunnel.example.com")
	}
	return u, nil
}
