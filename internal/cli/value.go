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
