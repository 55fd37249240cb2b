package cli

import (
	"flag"
	"fmt"
	"time"
)

// valueError says that where (a flag or a variable) was given v, which f
// refused, and what form f wants.
func valueError(where, v string, f *flag.Flag, err error) error {
	return fmt.Errorf("%s=%q: %s", where, v, want(f, err))
}

// want describes the values f takes, from its type and the name its usage
// gives them (the back-quoted word: "bytes" in "… in `bytes`").
func want(f *flag.Flag, err error) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err.Error()
	}
	name, _ := flag.UnquoteUsage(f)
	of := ""
	switch name {
	case "", "int", "uint", "float", "value", "n", "duration", "string":
	default:
		of = " of " + name
	}
	switch g.Get().(type) {
	case bool:
		return "want true or false"
	case int, int64, uint, uint64:
		return "want a whole number" + of
	case float64:
		return "want a number" + of
	case time.Duration:
		return "want a duration such as 500ms, 30s or 2m"
	default:
		return err.Error()
	}
}

// Set sets f to v, as given at where (a file's line and key, say), and
// says a refused value as a flag's: what was given and the form wanted.
func Set(f *flag.Flag, where, v string) error {
	if err := f.Value.Set(v); err != nil {
		return valueError(where, v, f, err)
	}
	return nil
}
