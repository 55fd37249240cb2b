package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus/redisbus"
	"keyhole/internal/proxy"
	"keyhole/internal/redisopt"
	"keyhole/internal/sock"
	"keyhole/registry/redisreg"
)

// cluster joins the nodes sharing --redis; with no --redis the proxy runs
// alone on its in-memory bus and registry.
func cluster(o *options, cfg *proxy.Config, log *slog.Logger) (func(), error) {
	if o.redis == "" {
		if o.clusterSecret != "" {
			return nil, errors.New("--cluster-secret needs --redis")
		}
		if o.redisPrefix != redisbus.DefaultPrefix {
			return nil, errors.New("--redis-prefix needs --redis")
		}
		return func() {}, nil
	}
	if len(o.clusterSecret) < 16 {
		return nil, errors.New("--redis needs --cluster-secret of at least 16 characters, the same on every node")
	}
	opts, err := redisOptions(o.redis)
	if err != nil {
		return nil, err
	}
	redisopt.LogTo(log)
	// No check that Redis answers: the node starts without it, serves its
	// own tunnels, and joins the others when Redis comes (the bus
	// subscribes, the registry announces its routes).
	client := redis.NewUniversalClient(opts)
	if cfg.Node == "" {
		host, _ := os.Hostname()
		cfg.Node = host + "-" + strings.ToLower(rand.Text()[:6])
	}
	b, err := redisbus.New(client, redisbus.Options{Prefix: o.redisPrefix, Secret: []byte(o.clusterSecret), Logger: log})
	if err != nil {
		client.Close()
		return nil, err
	}
	reg, err := redisreg.New(client, redisreg.Options{Prefix: o.redisPrefix, Logger: log})
	if err != nil {
		b.Close()
		client.Close()
		return nil, err
	}
	cfg.Bus, cfg.Registry = b, reg
	cfg.Blocklist = redisreg.NewBlocklist(client, o.redisPrefix, 0)
	return func() {
		reg.Close()
		b.Close()
		client.Close()
	}, nil
}

// redisOptions reads --redis: redis:// or rediss://, with addr=host:port
// parameters for more Cluster nodes or master_name=NAME for Sentinel
// (then the host and addr values are the sentinels, the URL's user and
// password the master's, and sentinel_username and sentinel_password
// the sentinels'). Every other option go-redis reads from a URL
// (pool_size, dial_timeout, read_timeout, max_retries, ...) is honoured;
// the proxy's own defaults fill only those the URL leaves out.
func redisOptions(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("--redis %q: want redis://host:port or rediss://host:port", raw)
	}
	q := u.Query()
	extra, master := q["addr"], q.Get("master_name")
	sentinelUser, sentinelPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	for _, k := range []string{"addr", "master_name", "sentinel_username", "sentinel_password"} {
		q.Del(k)
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	given := func(name string) bool { return q.Has(name) }
	if !given("dial_timeout") {
		o.DialTimeout = time.Second
	}
	if !given("read_timeout") {
		o.ReadTimeout = time.Second
	}
	if !given("write_timeout") {
		o.WriteTimeout = time.Second
	}
	if !given("max_retries") {
		o.MaxRetries = 1
	}
	if !given("pool_size") {
		o.PoolSize = 64
	}
	return &redis.UniversalOptions{
		Addrs:            append([]string{o.Addr}, extra...),
		MasterName:       master,
		SentinelUsername: sentinelUser,
		SentinelPassword: sentinelPass,
		DB:               o.DB,
		Username:         o.Username,
		Password:         o.Password,
		TLSConfig:        o.TLSConfig,
		Protocol:         o.Protocol,
		ClientName:       o.ClientName,

		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.ReadTimeout,
		WriteTimeout:    o.WriteTimeout,
		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,
		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,

		// Calls are bounded by their contexts (the bus's and the
		// registry's timeouts), whatever the socket timeouts.
		ContextTimeoutEnabled: true,

		Dialer: redisDialer(o.DialTimeout, o.TLSConfig),
	}, nil
}

// redisDialer dials Redis nodes and sentinels as go-redis itself would
// (its dial timeout and keepalive, TLS for rediss:// with the node's host
// as the server name unless the URL named one), over sockets of package
// sock: the bus carries every frame between nodes.
func redisDialer(timeout time.Duration, tlsConfig *tls.Config) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c = sock.Wrap(c)
		if tlsConfig == nil {
			return c, nil
		}
		cfg := tlsConfig
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
}
