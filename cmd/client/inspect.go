package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"keyhole/internal/inspect"
	"keyhole/tunnel"
)

// inspectOff is the --inspect value that turns the inspector off.
const inspectOff = "off"

// tunnelName names the command line's one tunnel in the inspector.
const tunnelName = "default"

// inspectName is how the inspector names a tunnel.
func inspectName(name string) string {
	if name == "" {
		return tunnelName
	}
	return name
}

// checkInspect checks an --inspect value: off, or host:port.
func checkInspect(v string) error {
	if v == inspectOff {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("--inspect %q: want host:port (e.g. 127.0.0.1:4040) or off", v)
	}
	return nil
}

// startInspector serves the inspector on addr, or on the next free port;
// with addr "off" it returns nil and nothing is recorded.
func startInspector(addr string, log *slog.Logger) (*inspect.Inspector, error) {
	if addr == inspectOff {
		return nil, nil
	}
	in := inspect.New(inspect.Options{Logger: log})
	a, err := in.Start(addr)
	if err != nil {
		return nil, fmt.Errorf("--inspect: %w", err)
	}
	log.Info("inspector: traffic and replays", "url", "http://"+a.String()+"/")
	return in, nil
}

// inspectTunnel puts a tunnel's traffic through the inspector: its
// transport toward the service and its WebSockets are recorded, and its
// URL shown. A nil inspector leaves cfg as it is.
func inspectTunnel(in *inspect.Inspector, name string, cfg *tunnel.Config) {
	if in == nil {
		return
	}
	next := cfg.Transport
	if next == nil {
		t := tunnel.NewTransport()
		if cfg.TargetInsecure {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		next = tunnel.NewServiceTransport(t)
	}
	cfg.Transport = in.Transport(name, next)
	cfg.WebSocketTap = in.WebSocketTap(name)
	onURL := cfg.OnURL
	cfg.OnURL = func(url string) {
		in.SetURL(name, url)
		if onURL != nil {
			onURL(url)
		}
	}
}
