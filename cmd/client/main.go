// Command client is keyhole's client: it publishes a private HTTP or
// WebSocket service through a keyhole proxy under a hostname derived from
// its key. The first line on stdout is the public URL.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"keyhole/internal/cli"
	"keyhole/internal/client"
	"keyhole/internal/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return // --help or --version, printed
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "keyhole client:", err)
		var perm *client.PermanentError
		if errors.As(err, &perm) {
			os.Exit(1) // the flags were fine; the proxy or the setup is not
		}
		os.Exit(2)
	}
}

type options struct {
	proxy      string
	target     string
	key        string
	hostHeader string
	headers    cli.Strings
	basicAuth  cli.Strings
	insecure   bool
	metrics    string
	inspect    string
	log        cli.LogOptions
	retry      bool
	printLabel bool
}

func parse(args []string, stdout io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stdout) // --help and --version; errors are returned
	fs.StringVar(&o.proxy, "proxy", "ws://127.0.0.1:8080", "proxy `URL` (wss:// for a proxy behind TLS; host:port means ws://host:port)")
	fs.StringVar(&o.target, "target", "", "private service to publish (required): a `URL` such as http://127.0.0.1:3000, host:port for http://host:port, or a port alone for http://127.0.0.1:port; with a path (http://127.0.0.1:3000/public) every request goes under it, and request paths with dot-segments or encoded slashes are refused with 400")
	fs.StringVar(&o.key, "key", "", "key `file`; created with mode 0600 if missing (default: keyhole/client.key in the user config directory)")
	fs.StringVar(&o.hostHeader, "host-header", "", "Host sent to the service: empty passes the visitor's, 'rewrite' sends the target's, anything else is sent as is")
	fs.Var(&o.headers, "header", "'Name: value' set on every request to the service (repeatable)")
	fs.BoolVar(&o.insecure, "target-insecure", false, "do not verify the certificate of an https:// target (a local service with a self-signed certificate); the link to the proxy is always verified")
	fs.Var(&o.basicAuth, "basic-auth", "'user:password' a visitor must give (HTTP Basic authentication; password of 8 characters or more); repeatable, for several users")
	fs.StringVar(&o.metrics, "metrics-listen", "", "serve /metrics (alias /_keyhole/metrics) and /healthz on this `address` (default: none)")
	fs.StringVar(&o.inspect, "inspect", "127.0.0.1:4040", "serve the inspector (requests through the tunnel, replays) on this `address`, or the next free port; 'off' records nothing")
	cli.AddLogFlags(fs, &o.log)
	fs.BoolVar(&o.retry, "retry-refused", false, "keep trying, backing off to 5 minutes, after failures that do not mend by themselves (a refused key, a server that is no keyhole proxy, a wrong scheme) instead of exiting with status 1")
	fs.BoolVar(&o.printLabel, "print-label", false, "print the label of the key in --key (creating the key if there is none) and exit without connecting, e.g. to put it in a proxy's --allow-keys")
	cli.SetUsage(fs, "usage: client --target http://127.0.0.1:3000 [flags]")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.printLabel {
		return &o, nil
	}
	if err := checkInspect(o.inspect); err != nil {
		return nil, err
	}
	if o.target == "" {
		return nil, errors.New("--target is required, e.g. --target 3000 for http://127.0.0.1:3000; run with --help for the flags")
	}
	u, err := client.TargetURL(o.target)
	if err != nil {
		return nil, fmt.Errorf("--target %q: %w", o.target, err)
	}
	o.target = u.String()
	p, err := client.ProxyURL(o.proxy)
	if err != nil {
		return nil, fmt.Errorf("--proxy %q: %w", o.proxy, err)
	}
	o.proxy = p.String()
	return &o, nil
}

// health answers the client's /healthz: the process runs. Whether its
// link is up is keyhole_client_link_up: a client restarted for a proxy
// that is down would not bring the proxy back.
func health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func parseHeaders(lines []string) (http.Header, error) {
	h := make(http.Header)
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", l)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	}
	return h, nil
}

// Main runs the client until ctx is done. The public URL is printed on
// stdout, alone on the first line, as soon as the tunnel is up.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stdout)
	if err != nil {
		return err
	}
	logw := cli.NewLogWriter(stderr, 100*time.Millisecond)
	defer logw.Close()
	log, err := cli.NewLogger(logw, o.log)
	if err != nil {
		return err
	}
	header, err := parseHeaders(o.headers)
	if err != nil {
		return err
	}
	path := o.key
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
		log.Info("created a new key", "path", path)
	}
	label := identity.Label(key.Public().(ed25519.PublicKey))
	if o.printLabel {
		fmt.Fprintln(stdout, label)
		return nil
	}
	var once sync.Once
	cfg := client.Config{
		Proxy:          o.proxy,
		Target:         o.target,
		Key:            key,
		HostHeader:     o.hostHeader,
		Header:         header,
		BasicAuth:      o.basicAuth,
		TargetInsecure: o.insecure,
		RetryPermanent: o.retry,
		Logger:         log,
		Ready: func(url string) {
			once.Do(func() { fmt.Fprintln(stdout, url) })
		},
	}
	in, err := startInspector(o.inspect, log)
	if err != nil {
		return err
	}
	if in != nil {
		defer in.Close()
	}
	inspectTunnel(in, tunnelName, &cfg)
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	if o.metrics != "" {
		stop, err := cli.ServeOps(o.metrics, c.MetricsHandler(), health, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("connecting", "proxy", o.proxy, "target", o.target, "label", label)
	err = c.Run(ctx)
	var perm *client.PermanentError
	if errors.As(err, &perm) {
		return fmt.Errorf("giving up: %w (--retry-refused keeps trying)", err)
	}
	return err
}
