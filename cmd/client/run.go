package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"keyhole/internal/identity"
	"keyhole/internal/inspect"
	"keyhole/internal/metrics"
	"keyhole/tunnel"
)

// group is the client's tunnels, run together.
type group struct {
	proxy   string
	log     *slog.Logger
	tunnels []*named
	metrics http.Handler
	inspect *inspect.Inspector // nil when off
}

// named is one tunnel of the group.
type named struct {
	tunnelOptions
	key   ed25519.PrivateKey
	label string
	log   *slog.Logger
	*tunnel.Tunnel
}

// build loads every tunnel's key and, unless only labels are wanted,
// makes its Tunnel.
func build(o *options, log *slog.Logger) (*group, error) {
	g := &group{proxy: o.proxy, log: log}
	for _, t := range o.tunnels {
		n := &named{tunnelOptions: t, log: log}
		if t.name != "" {
			n.log = log.With("tunnel", t.name)
		}
		if err := n.loadKey(); err != nil {
			return nil, err
		}
		g.tunnels = append(g.tunnels, n)
	}
	if o.printLabel {
		return g, nil
	}
	var err error
	if g.inspect, err = startInspector(o.inspect, log); err != nil {
		return nil, err
	}
	var reg *prometheus.Registry // shared by several tunnels, each with its label
	if len(o.tunnels) > 1 || o.config != "" {
		reg = metrics.NewRegistry()
		g.metrics = metrics.Handler(reg)
	}
	for _, n := range g.tunnels {
		cfg, err := n.config(o, reg)
		if err != nil {
			g.close()
			return nil, err
		}
		inspectTunnel(g.inspect, inspectName(n.name), &cfg)
		if n.Tunnel, err = tunnel.New(cfg); err != nil {
			g.close()
			return nil, err
		}
		if g.metrics == nil {
			g.metrics = n.MetricsHandler()
		}
	}
	return g, nil
}

// close stops what build started beside the tunnels.
func (g *group) close() {
	if g.inspect != nil {
		g.inspect.Close()
	}
}

// loadKey reads the tunnel's key file, creating it if missing.
func (n *named) loadKey() error {
	path := n.tunnelOptions.key
	var err error
	if path == "" {
		if path, err = identity.DefaultKeyPath(); err != nil {
			return fmt.Errorf("no --key given and %w", err)
		}
	}
	key, created, err := identity.LoadOrCreate(path)
	if err != nil {
		return err
	}
	if created {
		n.log.Info("created a new key", "path", path)
	}
	n.key = key
	n.label = identity.Label(key.Public().(ed25519.PublicKey))
	return nil
}

// config is the tunnel's Config; reg, when set, is the registry its
// metrics go to, labelled with its name.
func (n *named) config(o *options, reg *prometheus.Registry) (tunnel.Config, error) {
	header, err := parseHeaders(n.headers)
	if err != nil {
		return tunnel.Config{}, n.in(err)
	}
	// The transport toward the service, one per tunnel.
	tr := tunnel.NewTransport()
	if n.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	cfg := tunnel.Config{
		Proxy:          o.proxy,
		Target:         n.target,
		Key:            n.key,
		HostHeader:     n.hostHeader,
		Header:         header,
		BasicAuth:      n.basicAuth,
		TargetInsecure: n.insecure,
		Transport:      tunnel.NewServiceTransport(tr),
		RetryPermanent: o.retry,
		Logger:         n.log,
	}
	if reg != nil {
		cfg.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"tunnel": n.name}, reg)
	}
	return cfg, nil
}

// in names the tunnel an error is about, when there are names.
func (n *named) in(err error) error {
	if n.name == "" {
		return err
	}
	return fmt.Errorf("tunnel %s: %w", n.name, err)
}

func (g *group) printLabels(w io.Writer) {
	for _, n := range g.tunnels {
		if n.name == "" {
			fmt.Fprintln(w, n.label)
		} else {
			fmt.Fprintln(w, n.name, n.label)
		}
	}
}

// run runs every tunnel until ctx is done or one fails for good, which
// ends them all with its error.
func (g *group) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var failed error // the first permanent failure
	for _, n := range g.tunnels {
		n.log.Info("connecting", "proxy", g.proxy, "target", n.target, "label", n.label)
		wg.Go(func() {
			err := n.Run(ctx)
			var perm *tunnel.PermanentError
			if errors.As(err, &perm) {
				once.Do(func() {
					failed = n.in(fmt.Errorf("giving up: %w (--retry-refused keeps trying)", err))
					cancel()
				})
			}
		})
	}
	wg.Go(func() { g.printURLs(ctx, stdout) })
	wg.Wait()
	if failed != nil {
		return failed
	}
	return ctx.Err()
}

// printURLs prints each tunnel's URL once it has registered, in order.
func (g *group) printURLs(ctx context.Context, w io.Writer) {
	for _, n := range g.tunnels {
		select {
		case <-n.Ready():
		case <-ctx.Done():
			return
		}
		if n.name == "" {
			fmt.Fprintln(w, n.URL())
		} else {
			fmt.Fprintln(w, n.name, n.URL())
		}
	}
}
