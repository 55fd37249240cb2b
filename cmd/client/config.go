package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	"keyhole/internal/cli"
)

// inspectKey is the config file's inspector address, read whether or not
// the command line has its flag.
const inspectKey = "inspect"

// notInFile are flags a config file cannot set.
var notInFile = []string{"config", "print-label", "version"}

// loadConfig reads o.config: client-wide flags by name at the top, and
// under tunnels one mapping per tunnel of its flags by name. A flag given
// on the command line or in its variable wins over the file's top level.
func loadConfig(fs *flag.FlagSet, o *options) error {
	b, err := os.ReadFile(o.config)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("--config %s: %w", o.config, err)
	}
	c := &configFile{path: o.config, dir: filepath.Dir(o.config)}
	if len(doc.Content) == 0 {
		return c.errorf(&doc, "empty; want proxy: and tunnels:")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return c.errorf(root, "want a mapping of proxy:, tunnels: and other client flags")
	}
	if err := c.unique(root); err != nil {
		return err
	}
	given := givenFlags(fs)
	seenTunnels := false
	for k, v := range pairs(root) {
		switch {
		case k.Value == "tunnels":
			seenTunnels = true
			if o.tunnels, err = c.tunnels(v); err != nil {
				return err
			}
		case k.Value == inspectKey && fs.Lookup(inspectKey) == nil:
			if v.Kind != yaml.ScalarNode {
				return c.errorf(v, "%s: want an address such as 127.0.0.1:4040, or off", k.Value)
			}
			o.inspect = v.Value
		default:
			f := fs.Lookup(k.Value)
			if f == nil || slices.Contains(notInFile, k.Value) || isTunnelFlag(k.Value) {
				return c.errorf(k, "unknown key %q at the top level (client-wide flags by name, and tunnels:)", k.Value)
			}
			if given[k.Value] {
				continue
			}
			if err := c.set(f, k, v); err != nil {
				return err
			}
		}
	}
	if !seenTunnels || len(o.tunnels) == 0 {
		return c.errorf(root, "no tunnels; want tunnels: with one mapping per tunnel")
	}
	return nil
}

// givenFlags are the flags set on the command line or by their variable.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := os.LookupEnv(cli.EnvName(f.Name)); ok {
			given[f.Name] = true
		}
	})
	return given
}

func isTunnelFlag(name string) bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	tunnelFlags(fs, &tunnelOptions{})
	return fs.Lookup(name) != nil
}

// configFile is a config file being read.
type configFile struct {
	path string
	dir  string // key files are relative to it
}

func (c *configFile) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("--config %s:%d: "+format, append([]any{c.path, n.Line}, args...)...)
}

// unique refuses a mapping that holds a key twice.
func (c *configFile) unique(n *yaml.Node) error {
	seen := make(map[string]int)
	for k := range pairs(n) {
		if line, ok := seen[k.Value]; ok {
			return c.errorf(k, "%q given twice (first on line %d)", k.Value, line)
		}
		seen[k.Value] = k.Line
	}
	return nil
}

// tunnels reads the tunnels mapping, in file order.
func (c *configFile) tunnels(n *yaml.Node) ([]tunnelOptions, error) {
	if n.Kind != yaml.MappingNode {
		return nil, c.errorf(n, "tunnels: want one mapping per tunnel, by name")
	}
	if err := c.unique(n); err != nil {
		return nil, err
	}
	var out []tunnelOptions
	for k, v := range pairs(n) {
		if k.Value == "" {
			return nil, c.errorf(k, "a tunnel with no name")
		}
		t, err := c.tunnel(k.Value, v)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// tunnel reads one tunnel's flags.
func (c *configFile) tunnel(name string, n *yaml.Node) (tunnelOptions, error) {
	t := tunnelOptions{name: name}
	if n.Kind != yaml.MappingNode {
		return t, c.errorf(n, "tunnel %s: want a mapping of its flags (target:, key:, ...)", name)
	}
	if err := c.unique(n); err != nil {
		return t, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	tunnelFlags(fs, &t)
	for k, v := range pairs(n) {
		f := fs.Lookup(k.Value)
		if f == nil {
			return t, c.errorf(k, "unknown key %q in tunnel %s (its flags by name: target, key, host-header, header, basic-auth, target-insecure)", k.Value, name)
		}
		if err := c.set(f, k, v); err != nil {
			return t, err
		}
	}
	if t.key == "" {
		return t, c.errorf(n, "tunnel %s: no key; each tunnel needs a key file of its own", name)
	}
	if !filepath.IsAbs(t.key) {
		t.key = filepath.Join(c.dir, t.key)
	}
	return t, nil
}

// set gives flag f the value of v, a scalar or, for a repeatable flag, a
// list of scalars.
func (c *configFile) set(f *flag.Flag, k, v *yaml.Node) error {
	values := []*yaml.Node{v}
	_, repeatable := f.Value.(*cli.Strings)
	switch {
	case v.Kind == yaml.SequenceNode && repeatable:
		values = v.Content
	case v.Kind != yaml.ScalarNode:
		return c.errorf(v, "%s: want one value", k.Value)
	}
	for _, one := range values {
		if one.Kind != yaml.ScalarNode || one.Tag == "!!null" {
			return c.errorf(one, "%s: want a value", k.Value)
		}
		if err := cli.Set(f, k.Value, one.Value); err != nil {
			return c.errorf(one, "%w", err)
		}
	}
	return nil
}

// pairs yields a mapping node's keys and values in file order.
func pairs(n *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}
