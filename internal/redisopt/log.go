package redisopt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// LogTo routes go-redis's own log lines, which it writes for failures it
// recovers from (a pub/sub connection replaced, a pool dial failing),
// into log at Warn, so they share the format and level of every other
// line. go-redis has one logger per process.
func LogTo(log *slog.Logger) {
	redis.SetLogger(slogAdapter{log.With("component", "go-redis")})
}

// slogAdapter is go-redis's logging interface on a slog.Logger.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	if !a.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	a.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
