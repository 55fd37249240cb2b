package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// relayCmd runs the benchmark's binary as a byte relay: "bench relay
// host:port" listens on loopback, prints its address, and copies the bytes
// of every connection to and from a new connection to host:port.
const relayCmd = "relay"

// serveRelay is the least a tunnel of two processes can do: it parses
// nothing, frames nothing, and gives each visitor connection a connection
// of its own to the next hop, so that no request waits for another and no
// goroutine hands a message to another. Each direction is one goroutine
// copying through a buffer of its own (no splice: a tunnel that reads
// requests must read their bytes). Two of them in a row are the relay
// route of the relay suite, the floor under what any tunnel costs on the
// machine of the run.
func serveRelay(ctx context.Context, target string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr())
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { relayConn(ctx, c, target) })
	}
}

// relayConn copies c to and from a new connection to target until both
// directions end.
func relayConn(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	var d net.Dialer
	t, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); t.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyThrough(t, c)
		t.(*net.TCPConn).CloseWrite()
	}()
	copyThrough(c, t)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// copyThrough copies src to dst through a buffer, never by splice.
func copyThrough(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}

// startRelay starts two relays in a row in front of the backend.
func startRelay(ctx context.Context, s setup) (*env, error) {
	e := &env{backend: s.be}
	second, addr2, err := s.ps.start(ctx, s.tag+"relay-2", s.dir, s.self, relayCmd, s.be.addr())
	if err != nil {
		return e, err
	}
	e.procs = []*proc{second}
	first, addr1, err := s.ps.start(ctx, s.tag+"relay-1", s.dir, s.self, relayCmd, addr2)
	if err != nil {
		return e, err
	}
	e.procs = []*proc{first, second}
	e.routes = []route{directRoute(s.be), {name: "relay", base: "http://" + addr1, dial: addr1}}
	e.watched = []watched{
		{"backend", s.be.pid()},
		{"relay-1", first.cmd.Process.Pid},
		{"relay-2", second.cmd.Process.Pid},
	}
	return e, nil
}
