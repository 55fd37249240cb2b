// Package cli holds what keyhole's two commands share: every flag also
// read from KEYHOLE_<FLAG>, and repeatable flags.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName is the environment variable that sets a flag: KEYHOLE_ and the
// flag's name in upper case with '-' turned into '_'.
func EnvName(flagName string) string {
	return "KEYHOLE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then sets every flag not given on the command line
// from its environment variable. A repeatable flag's variable holds one
// value per line.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(EnvName(f.Name))
		if !ok || set[f.Name] || err != nil {
			return
		}
		values := []string{v}
		if _, multi := f.Value.(*Strings); multi {
			values = strings.Split(strings.TrimSpace(v), "\n")
		}
		for _, v := range values {
			if e := f.Value.Set(strings.TrimSpace(v)); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(f.Name), e)
				return
			}
		}
	})
	return err
}

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ", ") }

func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// SetUsage gives fs a usage text that names each flag's variable.
func SetUsage(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\nEvery flag can also be set with its environment variable.\n\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\t(%s)\n    \t%s", f.Name, name, EnvName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "[]" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}
