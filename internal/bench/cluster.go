package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

const (
	redisTries   = 3                // ports to try, in case another process takes the free one first
	routeTimeout = 15 * time.Second // for node b to reach the client over Redis
)

// startCluster starts a redis-server, two proxy nodes sharing it and a
// client connected to node a, and waits until node b routes to the
// client. On failure the env holds what it started, to stop.
func startCluster(ctx context.Context, s setup) (*env, error) {
	e := &env{backend: s.be}
	rd, redisAddr, err := startRedis(ctx, s)
	e.redis = redisAddr
	if err != nil {
		return e, err
	}
	e.procs = []*proc{rd}
	secret := make([]byte, 16)
	rand.Read(secret)
	nodes := make([]*proc, 2)
	for i, n := range []string{"a", "b"} {
		args := append([]string{"--redis", "redis://" + redisAddr, "--cluster-secret", hex.EncodeToString(secret), "--node", n}, s.proxyArgs...)
		p, addr, err := startProxy(ctx, s.ps, s.tag+"proxy-"+n, s.dir, s.bins.proxy, args...)
		if err != nil {
			return e, err
		}
		nodes[i] = p
		e.proxies = append(e.proxies, node{"proxy-" + n, addr})
		e.procs = append([]*proc{p}, e.procs...) // nodes stop before Redis
	}
	c, u, err := startClient(ctx, s, s.tag+"client-a", e.proxies[0].addr)
	if err != nil {
		return e, err
	}
	e.procs = append([]*proc{c}, e.procs...)
	// Both routes use the public URL's host name, with the port of the
	// node they enter on.
	for i, name := range []string{"same", "cross"} {
		addr := e.proxies[i].addr
		rt := route{name: name, base: u.Scheme + "://" + u.Hostname() + ":" + port(addr), dial: addr, tunnel: true}
		if err := waitRoute(ctx, rt); err != nil {
			return e, err
		}
		e.routes = append(e.routes, rt)
	}
	e.watched = []watched{
		{"backend", s.be.pid()},
		{"proxy-a", nodes[0].cmd.Process.Pid},
		{"proxy-b", nodes[1].cmd.Process.Pid},
		{"client", c.cmd.Process.Pid},
		{"redis", rd.cmd.Process.Pid},
	}
	return e, nil
}

// port is the port of host:port.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startRedis starts a redis-server without persistence on a free
// loopback port and waits until it answers. If it exits at once, another
// process may have taken the port in between: it tries another.
func startRedis(ctx context.Context, s setup) (*proc, string, error) {
	var err error
	for try := range redisTries {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		p, spawnErr := s.ps.spawn(fmt.Sprintf("%sredis-%d", s.tag, try), s.dir, s.o.redisServer, nil,
			"--port", port(addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if spawnErr != nil {
			return nil, "", fmt.Errorf("%w (see -redis-server)", spawnErr)
		}
		if err = waitRedis(ctx, p, addr); err == nil {
			return p, addr, nil
		}
		exited := errors.Is(err, errExited)
		err = fmt.Errorf("%s on %s: %w%s", p.name, addr, err, tail(p.log))
		s.ps.stop(p) // it failed already; what stop says adds nothing
		if !exited || ctx.Err() != nil {
			break
		}
	}
	return nil, "", err
}

var errExited = errors.New("exited")

// waitRedis waits up to startTimeout for redis-server p to answer a PING
// on addr.
func waitRedis(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := redisPing(ctx, addr)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %v", errExited, p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", startTimeout, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause(ctx, 20*time.Millisecond)
	}
}

// redisPing sends PING to the Redis at addr and reads its answer.
func redisPing(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	buf := make([]byte, len("+PONG\r\n"))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf)
	}
	return nil
}

// waitRoute GETs the 1 KiB body over rt until it comes back whole, for
// up to routeTimeout.
func waitRoute(ctx context.Context, rt route) error {
	var dials atomic.Int64
	tr := visitorTransport(rt.dial, 1, &dials)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline, tries := time.Now().Add(routeTimeout), 0
	for {
		err := fetch(ctx, hc, rt.base+"/1k", int64(len(bodies["/1k"])))
		tries++
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s route (%s): no 200 within %v, %d tries; last: %w", rt.name, rt.dial, routeTimeout, tries, err)
		}
		pause(ctx, 50*time.Millisecond)
	}
}
