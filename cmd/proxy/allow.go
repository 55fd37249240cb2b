package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
)

// allowList is the set of labels --allow-keys lets register. The file is
// read at start and again on SIGHUP; a file that fails to read leaves the
// previous set in force.
type allowList struct {
	path   string
	labels atomic.Pointer[map[string]struct{}]
}

func newAllowList(path string) (*allowList, error) {
	a := &allowList{path: path}
	if _, err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// allow reports whether label may register.
func (a *allowList) allow(label string) bool {
	_, ok := (*a.labels.Load())[label]
	return ok
}

// reload reads the file again and returns how many keys it allows.
func (a *allowList) reload() (int, error) {
	labels, err := readAllowList(a.path)
	if err != nil {
		return 0, err
	}
	a.labels.Store(&labels)
	return len(labels), nil
}

// readAllowList reads a file with one key per line, each written as its
// label, its hostname (<label>.<domain>) or its URL, as a client prints it.
// Blank lines and text after # are ignored.
func readAllowList(path string) (map[string]struct{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--allow-keys: %w", err)
	}
	defer f.Close()
	labels := make(map[string]struct{})
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		label, ok := labelOf(line)
		if !ok {
			return nil, fmt.Errorf("--allow-keys: %s:%d: %q is not a key's label, hostname or URL", path, n, line)
		}
		labels[label] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--allow-keys: %s: %w", path, err)
	}
	return labels, nil
}

// labelOf finds the label in a label, a hostname or a URL.
func labelOf(s string) (string, bool) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", false
		}
		s = u.Hostname()
	}
	label, _, _ := strings.Cut(strings.ToLower(s), ".")
	return label, identity.ValidLabel(label)
}

// reloadOnHangup rereads the allowed keys on each SIGHUP and closes the
// links of keys no longer allowed. It returns a function that stops it.
func reloadOnHangup(a *allowList, srv *proxy.Server, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-hup:
			case <-done:
				return
			}
			n, err := a.reload()
			if err != nil {
				log.Error("allowed keys not reloaded; the previous ones stay in force", "err", err)
				continue
			}
			closed := srv.CloseDisallowed()
			log.Info("allowed keys reloaded", "file", a.path, "keys", n, "links_closed", closed)
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-stopped
	}
}
