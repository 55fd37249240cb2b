package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// flags is a flag set like a command's, writing its help to out.
func flags(out *bytes.Buffer) *flag.FlagSet {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Int64("max-body", 512000, "largest body in `bytes`")
	fs.Float64("client-rate", 100, "`messages` per second")
	fs.Int("register-burst", 10, "registrations at once, `n`")
	fs.Duration("drain-timeout", 30*time.Second, "wait this `long`")
	fs.Bool("host-only-cookies", false, "strip cookie domains")
	fs.String("domain", "localhost", "the `domain`")
	SetUsage(fs, "usage: proxy [flags]")
	return fs
}

// A refused value names the flag or variable, the value and the form
// wanted; a syntax error is one line with a hint; neither prints usage.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--max-body=abc"}, want: `--max-body="abc": want a whole number of bytes`},
		{args: []string{"--client-rate", "fast"}, want: `--client-rate="fast": want a number of messages`},
		{args: []string{"--register-burst", "x"}, want: `--register-burst="x": want a whole number`},
		{args: []string{"--drain-timeout", "5"}, want: `--drain-timeout="5": want a duration such as 500ms, 30s or 2m`},
		{args: []string{"--host-only-cookies=maybe"}, want: `--host-only-cookies="maybe": want true or false`},
		{args: []string{"--bogus"}, want: "unknown flag --bogus; run with --help for the flags"},
		{args: []string{"-bogus"}, want: "unknown flag --bogus; run with --help for the flags"},
		{args: []string{"--domain"}, want: "--domain needs a value; run with --help for the flags"},
		{args: []string{"extra"}, want: `unexpected argument "extra"; run with --help for the flags`},
		{env: map[string]string{"KEYHOLE_MAX_BODY": "abc"}, want: `KEYHOLE_MAX_BODY="abc": want a whole number of bytes`},
		{env: map[string]string{"KEYHOLE_DRAIN_TIMEOUT": "soon"}, want: `KEYHOLE_DRAIN_TIMEOUT="soon": want a duration such as 500ms, 30s or 2m`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			err := Parse(flags(&out), tc.args)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q, want nothing", out.String())
			}
		})
	}
}

// --help prints the usage, --version the version, each to the flag set's
// output, and Parse returns flag.ErrHelp for the command to exit 0.
func TestParseHelpAndVersion(t *testing.T) {
	t.Setenv("KEYHOLE_VERSION", "true") // no variable for --version: ignored
	var out bytes.Buffer
	if err := Parse(flags(&out), nil); err != nil {
		t.Fatalf("no flags: %v", err)
	}
	if out.Len() > 0 {
		t.Errorf("no flags: printed %q", out.String())
	}
	for _, arg := range []string{"--help", "-h"} {
		out.Reset()
		if err := Parse(flags(&out), []string{arg}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: got %v, want flag.ErrHelp", arg, err)
		}
		if !strings.Contains(out.String(), "--max-body bytes\t(KEYHOLE_MAX_BODY)") || !strings.Contains(out.String(), "  --version\n") {
			t.Errorf("%s: usage is\n%s", arg, out.String())
		}
	}
	out.Reset()
	if err := Parse(flags(&out), []string{"--version"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--version: got %v, want flag.ErrHelp", err)
	}
	if got := out.String(); !strings.HasPrefix(got, "keyhole proxy ") || !strings.Contains(got, "go1.") || strings.Count(got, "\n") != 1 {
		t.Errorf("--version: printed %q, want one line naming the command and the Go version", got)
	}
}

// Values from the command line and the environment both arrive.
func TestParseSetsValues(t *testing.T) {
	t.Setenv("KEYHOLE_CLIENT_RATE", "5")
	t.Setenv("KEYHOLE_MAX_BODY", "1") // the command line wins
	var out bytes.Buffer
	fs := flags(&out)
	if err := Parse(fs, []string{"--max-body", "7", "--host-only-cookies"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"max-body": "7", "client-rate": "5", "host-only-cookies": "true", "domain": "localhost"} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s: got %s, want %s", name, got, want)
		}
	}
}
