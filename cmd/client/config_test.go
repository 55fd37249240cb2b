package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tunnels.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFile: the file's tunnels in file order, each option by its
// flag name, lists for repeatable flags, keys relative to the file's
// folder, client-wide flags at the top, which the command line overrides,
// and inspect kept for the inspector.
func TestConfigFile(t *testing.T) {
	path := writeConfig(t, `proxy: ws://127.0.0.1:9999
inspect: 127.0.0.1:4041
retry-refused: true
log-level: debug
tunnels:
  web:
    target: http://127.0.0.1:3000
    key: web.key
    host-header: rewrite
    header: ["A: 1", "B: 2"]
    basic-auth: "me:long-password"
  api:
    target: 8081
    key: /abs/api.key
    target-insecure: true
`)
	o, err := parse([]string{"--config", path, "--log-level", "warn"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	checks := []struct{ name, got, want string }{
		{"proxy", o.proxy, "ws://127.0.0.1:9999"},
		{"inspect", o.inspect, "127.0.0.1:4041"},
		{"log-level from the command line", o.log.Level, "warn"},
		{"tunnels", strings.Join([]string{o.tunnels[0].name, o.tunnels[1].name}, ","), "web,api"},
		{"web target", o.tunnels[0].target, "http://127.0.0.1:3000"},
		{"web key", o.tunnels[0].key, filepath.Join(dir, "web.key")},
		{"web host-header", o.tunnels[0].hostHeader, "rewrite"},
		{"web header", strings.Join(o.tunnels[0].headers, "|"), "A: 1|B: 2"},
		{"web basic-auth", strings.Join(o.tunnels[0].basicAuth, "|"), "me:long-password"},
		{"api target", o.tunnels[1].target, "http://127.0.0.1:8081"},
		{"api key", o.tunnels[1].key, "/abs/api.key"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !o.retry || !o.tunnels[1].insecure || o.tunnels[0].insecure {
		t.Errorf("booleans: got retry-refused %v, insecure %v %v, want true, false, true", o.retry, o.tunnels[0].insecure, o.tunnels[1].insecure)
	}
}

// TestConfigFileErrors: every mistake is one line naming the file, the
// line and the key.
func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		name, text string
		args       []string
		want       []string
	}{
		{"unknown top key", "proxy: ws://x\nfoo: 1\ntunnels:\n  a: {target: 1, key: a.key}\n", nil, []string{":2:", `"foo"`}},
		{"tunnel flag at the top", "target: 3000\ntunnels:\n  a: {target: 1, key: a.key}\n", nil, []string{":1:", `"target"`}},
		{"unknown tunnel key", "tunnels:\n  web:\n    target: 3000\n    key: a.key\n    hostheader: rewrite\n", nil, []string{":5:", `"hostheader"`, "tunnel web"}},
		{"bad value", "tunnels:\n  web:\n    target: 3000\n    key: a.key\n    target-insecure: maybe\n", nil, []string{":5:", "target-insecure", "true or false"}},
		{"list for a single flag", "tunnels:\n  web:\n    target: [1, 2]\n    key: a.key\n", nil, []string{":3:", "target", "one value"}},
		{"no target", "tunnels:\n  web:\n    key: a.key\n", nil, []string{"tunnel web", "no target"}},
		{"bad target", "tunnels:\n  web:\n    target: ftp://x\n    key: a.key\n", nil, []string{"tunnel web", "--target"}},
		{"no key", "tunnels:\n  web:\n    target: 3000\n", nil, []string{":3:", "tunnel web", "no key"}},
		{"no tunnels", "proxy: ws://x\n", nil, []string{"no tunnels"}},
		{"twice", "tunnels:\n  web: {target: 1, key: a.key}\n  web: {target: 2, key: b.key}\n", nil, []string{":3:", `"web" given twice`, "line 2"}},
		{"not yaml", "tunnels: [\n", nil, []string{"tunnels.yaml"}},
		{"--target with --config", "tunnels:\n  web: {target: 1, key: a.key}\n", []string{"--target", "3000"}, []string{"--config names the tunnels"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.text)
			_, err := parse(append([]string{"--config", path}, c.args...), io.Discard)
			if err == nil {
				t.Fatalf("got no error, want one with %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("got %q, want one line", err)
			}
		})
	}
}

// TestFlagsStillServeOneTunnel: without --config the flags name the one
// tunnel, as before.
func TestFlagsStillServeOneTunnel(t *testing.T) {
	o, err := parse([]string{"--target", "3000", "--header", "A: 1", "--header", "B: 2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.tunnels) != 1 || o.tunnels[0].name != "" || o.tunnels[0].target != "http://127.0.0.1:3000" || !slices.Equal(o.tunnels[0].headers, []string{"A: 1", "B: 2"}) {
		t.Errorf("got %+v, want one unnamed tunnel for http://127.0.0.1:3000 with two headers", o.tunnels)
	}
}
