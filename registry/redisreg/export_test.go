package redisreg

// MarkStale makes the next renewal write node's routes again under a new
// epoch, as a failed write does.
func (r *Registry) MarkStale(node string) { r.markStale(node) }

// Rewrite writes node's routes again under a new epoch, now.
func (r *Registry) Rewrite(node string) error { return r.rewrite(node) }

// AfterRouteRead makes f run in each Lookup between reading a route and
// reading its lease.
func (r *Registry) AfterRouteRead(f func()) { r.afterRouteRead = f }
