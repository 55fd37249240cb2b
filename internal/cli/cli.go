// Package cli holds what keyhole's two commands share: every flag also
// read from KEYHOLE_<FLAG>, repeatable flags, errors that name the flag or
// variable, the value and the form wanted, and --help and --version.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvName is the environment variable that sets a flag: KEYHOLE_ and the
// flag's name in upper case with '-' turned into '_'.
func EnvName(flagName string) string {
	return "KEYHOLE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// versionFlag is the flag SetUsage adds. It has no environment variable:
// a variable left set would turn every start into printing the version.
const versionFlag = "version"

// hint follows every error in the command line's syntax.
const hint = "run with --help for the flags"

// Parse parses args, then sets every flag not given on the command line
// from its environment variable. A repeatable flag's variable holds one
// value per line. On --help it prints the usage, on --version the version,
// to fs.Output(), and returns flag.ErrHelp: the command then exits 0. Any
// other error is one line, without the usage.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if v := fs.Lookup(versionFlag); v != nil && v.Value.String() == "true" {
		fmt.Fprintln(fs.Output(), Version(fs.Name()))
		return flag.ErrHelp
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == versionFlag || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			err = setFromEnv(f, v)
		}
	})
	return err
}

// parseArgs parses the command line, with the flag package's own output
// (an error, then the whole usage) replaced by one line.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var bad error // the first value a flag refused, said our way
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &checked{Value: f.Value, flag: f, bad: &bad}
	})
	out := fs.Output()
	fs.SetOutput(io.Discard)
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	fs.VisitAll(func(f *flag.Flag) { f.Value = f.Value.(*checked).Value })
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case bad != nil:
		return bad
	case err != nil:
		return fmt.Errorf("%s; %s", syntaxError(err), hint)
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q; %s", fs.Arg(0), hint)
	}
	return nil
}

// syntaxError says the flag package's errors with the flags spelled as
// the usage spells them.
func syntaxError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimLeft(name, "-")
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "--" + strings.TrimLeft(name, "-") + " needs a value"
	}
	return msg
}

// setFromEnv sets f from its variable's value v.
func setFromEnv(f *flag.Flag, v string) error {
	values := []string{v}
	if _, multi := f.Value.(*Strings); multi {
		values = strings.Split(strings.TrimSpace(v), "\n")
	}
	for _, one := range values {
		if err := f.Value.Set(strings.TrimSpace(one)); err != nil {
			return valueError(EnvName(f.Name), one, f, err)
		}
	}
	return nil
}

// checked wraps a flag's value while the command line is parsed, to say a
// refused value our way.
type checked struct {
	flag.Value
	flag *flag.Flag
	bad  *error
}

func (c *checked) Set(v string) error {
	err := c.Value.Set(v)
	if err != nil && *c.bad == nil {
		f := *c.flag
		f.Value = c.Value // the flag's own, whose type says what it wants
		*c.bad = valueError("--"+f.Name, v, &f, err)
	}
	return err
}

func (c *checked) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Strings is a repeatable string flag.
type Strings []string

func (s *Strings) String() string { return strings.Join(*s, ", ") }

func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// SetUsage gives fs a usage text that names each flag's variable, and a
// --version flag.
func SetUsage(fs *flag.FlagSet, synopsis string) {
	fs.Bool(versionFlag, false, "print the version and exit")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\nEvery flag but --version can also be set with its environment variable.\n\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			if f.Name == versionFlag {
				fmt.Fprintf(out, "  --%s\n    \t%s\n", f.Name, usage)
				return
			}
			fmt.Fprintf(out, "  --%s %s\t(%s)\n    \t%s", f.Name, name, EnvName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "[]" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}
