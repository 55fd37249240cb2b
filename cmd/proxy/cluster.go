package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus/redisbus"
	"keyhole/internal/proxy"
	"keyhole/internal/redisopt"
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
// (then the host and addr values are the sentinels).
func redisOptions(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("--redis %q: want redis://host:port or rediss://host:port", raw)
	}
	q := u.Query()
	extra, master := q["addr"], q.Get("master_name")
	q.Del("addr")
	q.Del("master_name")
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	return &redis.UniversalOptions{
		Addrs:                 append([]string{o.Addr}, extra...),
		MasterName:            master,
		DB:                    o.DB,
		Username:              o.Username,
		Password:              o.Password,
		TLSConfig:             o.TLSConfig,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		PoolSize:              64,
	}, nil
}
