package redisopt_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/internal/redisopt"
	"keyhole/internal/redistest"
	"keyhole/internal/syncbuf"
)

// go-redis's own lines (here: a pub/sub channel nobody reads dropping a
// message) come out of the slog logger, in its format, not on stderr.
func TestLogToRoutesGoRedisLines(t *testing.T) {
	srv := redistest.Start(t)
	var out syncbuf.Buffer
	redisopt.LogTo(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(func() { redisopt.LogTo(slog.New(slog.DiscardHandler)) })

	rc := srv.NewClient(t)
	ps := rc.Subscribe(context.Background(), "log-test")
	defer ps.Close()
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	ps.Channel(redis.WithChannelSize(1), redis.WithChannelSendTimeout(time.Millisecond))
	for range 5 {
		rc.Publish(context.Background(), "log-test", "x")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "channel is full") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("go-redis line not in the logger's JSON: %q: %v", out.String(), err)
	}
	if got["level"] != "WARN" || got["component"] != "go-redis" || !strings.Contains(got["msg"].(string), "channel is full") {
		t.Errorf("got %v, want a WARN line from component go-redis saying the channel is full", got)
	}
}
