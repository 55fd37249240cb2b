package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"keyhole/internal/identity"
	"keyhole/internal/proxy"
)

// allowList is the set of labels --allow-keys lets register. The file is
// read at start, again on SIGHUP, and whenever its content changes (see
// watchAllowList); a file that fails to read leaves the previous set in
// force.
type allowList struct {
	path   string
	labels atomic.Pointer[map[string]struct{}]

	mu   sync.Mutex // protects last
	last []byte     // the content the labels were read from
}

func newAllowList(path string) (*allowList, error) {
	a := &allowList{path: path}
	if _, _, err := a.reload(true); err != nil {
		return nil, err
	}
	return a, nil
}

// allow reports whether label may register.
func (a *allowList) allow(label string) bool {
	_, ok := (*a.labels.Load())[label]
	return ok
}

// reload reads the file again and returns how many keys it allows. Unless
// force is set it changes nothing, and reports changed false, when the
// content is what it was.
func (a *allowList) reload(force bool) (n int, changed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// os.ReadFile follows symlinks, so a mounted ConfigMap, which swaps a
	// symlink to a new directory, is read at its new content.
	data, err := os.ReadFile(a.path)
	if err != nil {
		return 0, false, fmt.Errorf("--allow-keys: %w", err)
	}
	if !force && bytes.Equal(data, a.last) {
		return len(*a.labels.Load()), false, nil
	}
	labels, err := parseAllowList(a.path, data)
	if err != nil {
		return 0, false, err
	}
	a.labels.Store(&labels)
	a.last = data
	return len(labels), true, nil
}

// parseAllowList parses the content of the file at path: one key per
// line, each written as its label, its hostname (<label>.<domain>) or its
// URL, as a client prints it. Blank lines and text after # are ignored.
func parseAllowList(path string, data []byte) (map[string]struct{}, error) {
	labels := make(map[string]struct{})
	sc := bufio.NewScanner(bytes.NewReader(data))
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

// allowPoll is how often watchAllowList looks at the file's content.
const allowPoll = 2 * time.Second

// watchAllowList rereads the allowed keys on each SIGHUP and whenever the
// file's content changes (looked at every poll), and closes the links of
// keys no longer allowed, telling their clients why. A pod cannot be sent
// SIGHUP when its ConfigMap changes; the poll sees the new content. It
// returns a function that stops it.
func watchAllowList(a *allowList, srv *proxy.Server, log *slog.Logger, poll time.Duration) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	t := time.NewTicker(poll)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			force := false
			select {
			case <-hup:
				force = true
			case <-t.C:
			case <-done:
				return
			}
			n, changed, err := a.reload(force)
			switch {
			case err != nil && force:
				log.Error("allowed keys not reloaded; the previous ones stay in force", "err", err)
			case err != nil:
				// A file being replaced may be missing for a moment;
				// say so once it has not come back by the next poll.
				log.Warn("allowed keys not reloaded; the previous ones stay in force", "err", err)
			case changed:
				closed := srv.CloseDisallowed()
				log.Info("allowed keys reloaded", "file", a.path, "keys", n, "links_closed", closed)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		t.Stop()
		close(done)
		<-stopped
	}
}
