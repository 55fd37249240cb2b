package redisreg

// MarkStale makes the next renewal write node's routes again under a new
// epoch, as a failed write does.
func (r *Registry) MarkStale(node string) { r.markStale(node) }
