// Command client is keyhole's client: it publishes private HTTP or
// WebSocket services through a keyhole proxy, each under a hostname
// derived from its key. With flags it publishes one, and the first line
// on stdout is its public URL; with --config, those of the file, one
// line per tunnel on stdout: its name and its URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"keyhole/internal/cli"
	"keyhole/tunnel"
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
		var perm *tunnel.PermanentError
		if errors.As(err, &perm) {
			os.Exit(1) // the flags were fine; the proxy or the setup is not
		}
		os.Exit(2)
	}
}

// health answers the client's /healthz: the process runs. Whether its
// links are up is keyhole_client_link_up: a client restarted for a proxy
// that is down would not bring the proxy back.
func health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// Main runs the client until ctx is done. Each tunnel's public URL is
// printed on stdout as soon as it is up: alone on the first line for the
// one tunnel of the flags, after the tunnel's name with --config.
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
	g, err := build(o, log)
	if err != nil {
		return err
	}
	defer g.close()
	if o.printLabel {
		g.printLabels(stdout)
		return nil
	}
	if o.metrics != "" {
		stop, err := cli.ServeOps(o.metrics, g.metrics, health, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return g.run(ctx, stdout)
}
