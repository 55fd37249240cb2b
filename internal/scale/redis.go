package main

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis runs a redis-server with persistence off on a free port.
func (ps *procs) startRedis(ctx context.Context, bin string) (string, *exec.Cmd, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--maxclients", "20000", "--logfile", filepath.Join(ps.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(ctx).Err() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return "", nil, fmt.Errorf("redis-server on %s did not answer", addr)
		}
	}
	return addr, cmd, nil
}

// commandStats are the calls of each command, from INFO commandstats.
type commandStats map[string]int64

func readCommandStats(ctx context.Context, c *redis.Client) (commandStats, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	st := commandStats{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("commandstats %q: %w", line, err)
		}
		st[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return st, nil
}

// since returns the calls made between before and st, less the one INFO
// that read st.
func (st commandStats) since(before commandStats) (total int64, byCommand string) {
	diff := map[string]int64{}
	for k, v := range st {
		if d := v - before[k]; d > 0 {
			diff[k] = d
		}
	}
	diff["info"]--
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(diff)) {
		if diff[k] > 0 {
			total += diff[k]
			parts = append(parts, fmt.Sprintf("%s %d", k, diff[k]))
		}
	}
	return total, strings.Join(parts, ", ")
}

// usedMemory is Redis's used_memory, from INFO memory.
func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}
