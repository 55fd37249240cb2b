package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"keyhole/internal/cli"
	"keyhole/tunnel"
)

// options are the client-wide settings, and the tunnels to run: one from
// the flags, or those of --config.
type options struct {
	proxy      string
	config     string
	metrics    string
	log        cli.LogOptions
	retry      bool
	printLabel bool
	inspect    string // the inspector's address, or "off"

	tunnels []tunnelOptions
}

// tunnelOptions are one tunnel's settings; in a config file each is
// spelled as its flag.
type tunnelOptions struct {
	name       string // in the config file; "" for the flags' one tunnel
	target     string
	key        string
	hostHeader string
	headers    cli.Strings
	basicAuth  cli.Strings
	insecure   bool
}

// tunnelFlags defines the flags of one tunnel on fs.
func tunnelFlags(fs *flag.FlagSet, t *tunnelOptions) {
	fs.StringVar(&t.target, "target", "", "private service to publish (required): a `URL` such as http://127.0.0.1:3000, host:port for http://host:port, or a port alone for http://127.0.0.1:port; with a path (http://127.0.0.1:3000/public) every request goes under it, and request paths with dot-segments or encoded slashes are refused with 400")
	fs.StringVar(&t.key, "key", "", "key `file`; created with mode 0600 if missing (default: keyhole/client.key in the user config directory)")
	fs.StringVar(&t.hostHeader, "host-header", "", "Host sent to the service: empty passes the visitor's, 'rewrite' sends the target's, anything else is sent as is")
	fs.Var(&t.headers, "header", "'Name: value' set on every request to the service (repeatable)")
	fs.BoolVar(&t.insecure, "target-insecure", false, "do not verify the certificate of an https:// target (a local service with a self-signed certificate); the link to the proxy is always verified")
	fs.Var(&t.basicAuth, "basic-auth", "'user:password' a visitor must give (HTTP Basic authentication; password of 8 characters or more); repeatable, for several users")
}

func (t *tunnelOptions) isZero() bool {
	return t.target == "" && t.key == "" && t.hostHeader == "" && len(t.headers) == 0 && len(t.basicAuth) == 0 && !t.insecure
}

// newFlagSet defines every flag of the command line on a new FlagSet.
func newFlagSet(o *options, t *tunnelOptions, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stdout) // --help and --version; errors are returned
	fs.StringVar(&o.proxy, "proxy", "ws://127.0.0.1:8080", "proxy `URL` (wss:// for a proxy behind TLS; host:port means ws://host:port)")
	tunnelFlags(fs, t)
	fs.StringVar(&o.config, "config", "", "YAML `file` of several tunnels, each with its target, key and options named as their flags, and of client-wide flags such as proxy (see README); instead of --target")
	fs.StringVar(&o.metrics, "metrics-listen", "", "serve /metrics (alias /_keyhole/metrics) and /healthz on this `address` (default: none)")
	fs.StringVar(&o.inspect, "inspect", "127.0.0.1:4040", "serve the inspector (requests through the tunnels, replays) on this `address`, or the next free port; 'off' records nothing")
	cli.AddLogFlags(fs, &o.log)
	fs.BoolVar(&o.retry, "retry-refused", false, "keep trying, backing off to 5 minutes, after failures that do not mend by themselves (a refused key, a server that is no keyhole proxy, a wrong scheme) instead of exiting with status 1")
	fs.BoolVar(&o.printLabel, "print-label", false, "print the label of the key in --key (creating the key if there is none) and exit without connecting, e.g. to put it in a proxy's --allow-keys; with --config, one line per tunnel: its name and label")
	cli.SetUsage(fs, "usage: client --target http://127.0.0.1:3000 [flags]\n       client --config tunnels.yaml [flags]")
	return fs
}

func parse(args []string, stdout io.Writer) (*options, error) {
	var o options
	var t tunnelOptions
	fs := newFlagSet(&o, &t, stdout)
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.config != "" {
		if !t.isZero() {
			return nil, errors.New("--config names the tunnels: give --target, --key, --host-header, --header, --basic-auth and --target-insecure (or their KEYHOLE_ variables) per tunnel in the file")
		}
		if err := loadConfig(fs, &o); err != nil {
			return nil, err
		}
	} else {
		o.tunnels = []tunnelOptions{t}
	}
	if o.printLabel {
		return &o, nil
	}
	if err := checkInspect(o.inspect); err != nil {
		return nil, err
	}
	p, err := tunnel.ProxyURL(o.proxy)
	if err != nil {
		return nil, fmt.Errorf("--proxy %q: %w", o.proxy, err)
	}
	o.proxy = p.String()
	for i := range o.tunnels {
		if err := o.tunnels[i].check(); err != nil {
			return nil, err
		}
	}
	return &o, nil
}

// check reads the target, and refuses a tunnel without one.
func (t *tunnelOptions) check() error {
	in := ""
	if t.name != "" {
		in = "tunnel " + t.name + ": "
	}
	if t.target == "" {
		if t.name != "" {
			return fmt.Errorf("%sno target; give one, e.g. target: 3000 for http://127.0.0.1:3000", in)
		}
		return errors.New("--target is required, e.g. --target 3000 for http://127.0.0.1:3000; run with --help for the flags")
	}
	u, err := tunnel.TargetURL(t.target)
	if err != nil {
		return fmt.Errorf("%s--target %q: %w", in, t.target, err)
	}
	t.target = u.String()
	return nil
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
