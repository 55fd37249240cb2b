package main

import (
	"testing"
	"time"
)

// TestRedisOptions: the options a --redis URL carries are kept, the
// proxy's defaults fill only the others, and Sentinel takes passwords for
// the master and for the sentinels.
func TestRedisOptions(t *testing.T) {
	o, err := redisOptions("redis://:master-pw@s1:26379?addr=s2:26379&master_name=mymaster&sentinel_password=sentinel-pw&sentinel_username=watcher&pool_size=8&dial_timeout=3s&max_retries=4&db=2")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"addrs", len(o.Addrs), 2},
		{"master name", o.MasterName, "mymaster"},
		{"password", o.Password, "master-pw"},
		{"sentinel password", o.SentinelPassword, "sentinel-pw"},
		{"sentinel username", o.SentinelUsername, "watcher"},
		{"pool size", o.PoolSize, 8},
		{"dial timeout", o.DialTimeout, 3 * time.Second},
		{"max retries", o.MaxRetries, 4},
		{"db", o.DB, 2},
		{"read timeout (default)", o.ReadTimeout, time.Second},
		{"context timeouts", o.ContextTimeoutEnabled, true},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	d, err := redisOptions("redis://127.0.0.1:6379")
	if err != nil {
		t.Fatal(err)
	}
	if d.PoolSize != 64 || d.DialTimeout != time.Second || d.MaxRetries != 1 {
		t.Errorf("defaults: got pool %d, dial %v, retries %d; want 64, 1s, 1", d.PoolSize, d.DialTimeout, d.MaxRetries)
	}
}
