package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"keyhole/internal/logline"
)

// LogOptions are the --log-format and --log-level flags both commands
// take.
type LogOptions struct {
	Format string // text or json
	Level  string // debug, info, warn or error
}

// AddLogFlags adds --log-format and --log-level to fs.
func AddLogFlags(fs *flag.FlagSet, o *LogOptions) {
	fs.StringVar(&o.Format, "log-format", "text", "log line `format`: text (key=value) or json (one object per line)")
	fs.StringVar(&o.Level, "log-level", "info", "least `level` logged: debug, info, warn or error (info includes one line per request)")
}

// NewLogger returns the logger o asks for, writing to w.
func NewLogger(w io.Writer, o LogOptions) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.Level)); err != nil || !knownLevel(o.Level) {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.Format {
	case "text":
		return slog.New(logline.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", o.Format)
}

func knownLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}
