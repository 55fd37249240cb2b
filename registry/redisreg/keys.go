package redisreg

// keys names the Redis keys of one prefix. A node's lease and index share
// the hash tag {node}, so they live in one Cluster slot; route keys are
// spread over the slots by label.
type keys struct{ prefix string }

// route is the hash of the nodes holding label: node -> epoch.
func (k keys) route(label string) string { return k.prefix + ":route:" + label }

// lease is node's lease: its epoch, with a TTL.
func (k keys) lease(node string) string { return k.prefix + ":lease:{" + node + "}" }

// index is the set of labels node announced under epoch.
func (k keys) index(node, epoch string) string {
	return k.prefix + ":labels:{" + node + "}:" + epoch
}

// nodes is the hash of every node that took a lease: node -> epoch.
func (k keys) nodes() string { return k.prefix + ":nodes" }

// unlockScript deletes field ARGV[1] of hash KEYS[1] if its value is still
// ARGV[2]: it removes a stale route (or node) without racing a rewrite
// that gave it a new epoch meanwhile.
const unlockScript = `
if redis.call("HGET", KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call("HDEL", KEYS[1], ARGV[1])
end
return 0`
