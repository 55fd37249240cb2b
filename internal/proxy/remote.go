package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"keyhole/bus"
	"keyhole/internal/link"
	"keyhole/messages"
)

// ErrLost means a message of a stream never arrived across the bus.
var ErrLost = errors.New("a message was lost between proxy nodes")

// probeInterval is how often a node checks that the nodes its streams
// cross to are still there.
const probeInterval = time.Second

// remoteStreams holds the streams that cross the bus, on both ends.
type remoteStreams struct {
	mu       sync.Mutex                     // protects visitors and relays
	visitors map[messages.ID]*remoteVisitor // visitors here, links elsewhere
	relays   map[relayKey]*relay            // links here, visitors elsewhere
}

type relayKey struct {
	node string
	id   messages.ID
}

func (r *remoteStreams) init() {
	r.visitors = make(map[messages.ID]*remoteVisitor)
	r.relays = make(map[relayKey]*relay)
}

// remoteRoute finds a node holding label and returns the way to it.
func (s *Server) remoteRoute(ctx context.Context, label string) (upstream, error) {
	others, err := s.otherNodes(ctx, label)
	if err != nil {
		return nil, err
	}
	s.stats.RemoteRequests.Add(1)
	return &remoteUpstream{s: s, node: s.gone.pick(others), label: label}, nil
}

// otherNodes returns the nodes other than this one that hold label, from
// the route cache or else the registry. The requests that miss the cache
// for one label at once share one lookup: a burst of visitors to a tunnel
// asks Redis once, and none of them waits behind the others' lookups.
func (s *Server) otherNodes(ctx context.Context, label string) ([]string, error) {
	if others, ok := s.routes.get(label); ok {
		return others, nil
	}
	// The lookup is the registry's, with its own timeout: the visitor
	// that started it may leave without failing the others.
	lookup := context.WithoutCancel(ctx)
	ch := s.lookups.DoChan(label, func() (any, error) {
		nodes, err := s.cfg.Registry.Lookup(lookup, label)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRouting, err)
		}
		var others []string
		for _, n := range nodes {
			if n != s.cfg.Node {
				others = append(others, n)
			}
		}
		if len(others) == 0 {
			return nil, ErrNoTunnel
		}
		s.routes.put(label, others)
		return others, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]string), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrRouting, context.Cause(ctx))
	}
}

// nodeGone routes around node, whose subscriber a publish did not find:
// a node that died, whose routes linger in the registry until they
// expire. It is not withdrawn from the registry, since a node that is
// only resubscribing (a bus reconnect, a Cluster failover) would lose its
// routes on every node until its next renewal.
func (s *Server) nodeGone(node string) {
	if s.gone.mark(node) {
		s.stats.NodesGone.Add(1)
		s.log.Info("node has no subscriber; routing around it", "peer", node, "for", goneFor)
	}
}

// routeCache remembers for a moment which other nodes hold a label, so
// the requests of a busy remote tunnel do not each ask the registry. A
// failed request forgets its label's entry.
type routeCache struct {
	mu sync.Mutex // protects m
	m  map[string]routeEntry
}

type routeEntry struct {
	nodes []string
	until time.Time
}

const (
	routeTTL       = time.Second
	maxCachedRoute = 10000
)

func (c *routeCache) get(label string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[label]
	if !ok || time.Now().After(e.until) {
		return nil, false
	}
	return e.nodes, true
}

func (c *routeCache) put(label string, nodes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedRoute {
		c.m = make(map[string]routeEntry) // simplest bound: start over
	}
	c.m[label] = routeEntry{nodes: nodes, until: time.Now().Add(routeTTL)}
}

func (c *routeCache) forget(label string) {
	c.mu.Lock()
	delete(c.m, label)
	c.mu.Unlock()
}

// remoteUpstream sends a visitor's stream to the node holding the link.
type remoteUpstream struct {
	s     *Server
	node  string
	label string
}

// remoteVisitor is one visitor stream served by another node.
type remoteVisitor struct {
	k    sink
	node string
	recv uint32 // next seq expected; touched only by the bus handler

	// Frames toward the link's node wait in out, in order, for whoever
	// publishes them (see sendBatch).
	mu       sync.Mutex
	cond     sync.Cond // on mu: signalled when a publish ends
	out      []*link.Buffer
	outBytes int    // the bytes of out
	queued   uint64 // frames ever queued
	done     uint64 // frames ever published, or dropped after a failure
	busy     bool   // someone publishes what is queued
	err      error  // the first failed publish: every later send fails with it

	// The publisher's own.
	sent   uint32
	buf    []byte
	frames [][]byte
	batch  []*link.Buffer
}

// streamPublishTimeout bounds the publish of a stream's message after its
// first, here and in the relay back (relay.run).
const streamPublishTimeout = 5 * time.Second

// maxEnvelope is about how many bytes of frames a stream's message across
// the bus carries at most: a few frames, so a fast body crosses Redis in
// few round trips, and few enough that a node's and Redis's buffers stay
// small beside the stream's window.
const maxEnvelope = 3 * messages.MaxFrame

func (u *remoteUpstream) attach(id messages.ID, k sink) error {
	v := &remoteVisitor{k: k, node: u.node}
	v.cond.L = &v.mu
	r := &u.s.remote
	r.mu.Lock()
	defer r.mu.Unlock()
	r.visitors[id] = v
	return nil
}

func (u *remoteUpstream) detach(id messages.ID) {
	r := &u.s.remote
	r.mu.Lock()
	delete(r.visitors, id)
	r.mu.Unlock()
}

// credit is always true across nodes: the relay on the link's node grants
// for a client of link revision 1 itself (see openRelay).
func (u *remoteUpstream) credit() bool { return true }

func (u *remoteUpstream) widen() int64 { return messages.MaxWindow - messages.InitialWindow }

func (u *remoteUpstream) send(ctx context.Context, b *link.Buffer) error {
	return u.sendBatch(ctx, b)
}

// sendBatch queues frames of one stream to be published in order, several
// to an envelope. Body and credit frames go on from a goroutine while
// their sender carries on, so that a stream's next bytes are read while
// the last ones cross Redis; their sender waits only once a whole
// message's worth queues behind the one on its way. A failure then fails
// the stream, and later sends. Any other frame (a head, an Error, a teardown) waits until it
// has been published, and its sender publishes itself when nobody else
// does, so that the first message of a stream can tell a node gone
// (errNodeGone) before anything ran there.
func (u *remoteUpstream) sendBatch(_ context.Context, bs ...*link.Buffer) error {
	r := &u.s.remote
	r.mu.Lock()
	v := r.visitors[frameID(bs[0].B)]
	r.mu.Unlock()
	if v == nil {
		link.FreeAll(bs)
		return ErrTunnelGone
	}
	wait := !pipelined(bs)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		link.FreeAll(bs)
		return v.err
	}
	v.out = append(v.out, bs...)
	for _, b := range bs {
		v.outBytes += len(b.B)
	}
	v.queued += uint64(len(bs))
	mine := v.queued
	if !v.busy {
		v.busy = true
		if !wait {
			u.goPublish(v)
			return nil
		}
		u.publish(v, mine)
	}
	if !wait {
		// While one message is on its way, the next fills; a sender
		// that has filled it too waits for the publisher to take it.
		for v.outBytes >= maxEnvelope && v.err == nil {
			v.cond.Wait()
		}
		return nil
	}
	for v.done < mine && v.err == nil {
		v.cond.Wait()
	}
	return v.err
}

// pipelined reports whether frames may be published after their sender
// has gone on: body and credit frames, which the stream's window bounds.
func pipelined(bs []*link.Buffer) bool {
	for _, b := range bs {
		switch messages.Type(b.B[1]) {
		case messages.TypeData, messages.TypeCredit, messages.TypeWSMessage:
		default:
			return false
		}
	}
	return true
}

// goPublish publishes what v has queued from a goroutine. v.mu is held,
// and v.busy set for it.
func (u *remoteUpstream) goPublish(v *remoteVisitor) {
	u.s.wg.Add(1)
	go func() {
		defer u.s.wg.Done()
		v.mu.Lock()
		defer v.mu.Unlock()
		u.publish(v, 0)
	}()
}

// publish publishes what v has queued, an envelope at a time, until
// nothing is left or, for a sender waiting for its own frames (until >
// 0), until those have gone: the rest then goes on from a goroutine. It
// is called with v.mu held and v.busy set, and unlocks while it
// publishes.
func (u *remoteUpstream) publish(v *remoteVisitor, until uint64) {
	for len(v.out) > 0 && v.err == nil {
		if until > 0 && v.done >= until {
			u.goPublish(v)
			return
		}
		n, size := 0, 0
		for n < len(v.out) && (n == 0 || size+len(v.out[n].B) <= maxEnvelope) {
			size += len(v.out[n].B)
			n++
		}
		v.batch = append(v.batch[:0], v.out[:n]...)
		rest := copy(v.out, v.out[n:])
		clear(v.out[rest:])
		v.out = v.out[:rest]
		v.outBytes -= size
		v.cond.Broadcast()
		v.mu.Unlock()
		err := u.publishBatch(v, v.batch)
		link.FreeAll(v.batch)
		clear(v.batch)
		v.mu.Lock()
		v.done += uint64(n)
		if err != nil {
			v.err = err
			v.done += uint64(len(v.out))
			link.FreeAll(v.out)
			v.out, v.outBytes = nil, 0
			v.mu.Unlock()
			v.k.fail(err)
			v.mu.Lock()
		}
		v.cond.Broadcast()
	}
	v.busy = false
	v.cond.Broadcast()
}

// publishBatch publishes frames in one envelope; only the publisher calls
// it.
func (u *remoteUpstream) publishBatch(v *remoteVisitor, bs []*link.Buffer) error {
	v.frames = v.frames[:0]
	for _, b := range bs {
		v.frames = append(v.frames, b.B)
	}
	v.buf = appendEnvelope(v.buf[:0], kindToLink, v.sent, u.s.cfg.Node, u.label, v.frames...)
	clear(v.frames)
	first := v.sent == 0
	v.sent++
	ctx := u.s.ctx
	if !first {
		// A stream under way waits on a busy Redis rather than fail;
		// its first message fails fast, to try another way.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, streamPublishTimeout)
		defer cancel()
	}
	if err := u.s.cfg.Bus.Publish(ctx, u.node, v.buf); err != nil {
		if errors.Is(err, bus.ErrNoSubscriber) {
			u.s.nodeGone(u.node)
			if first {
				return fmt.Errorf("%w: node %s is %w", ErrTunnelGone, u.node, errNodeGone)
			}
			return fmt.Errorf("%w: node %s is gone", ErrTunnelGone, u.node)
		}
		return fmt.Errorf("%w: %w", ErrRouting, err)
	}
	return nil
}

// watchNodes probes, every probeInterval, each node that streams of this
// node cross to, and fails those streams at once when the node is gone
// (or the bus is), instead of letting them wait for a timeout.
func (s *Server) watchNodes() {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	probe := appendEnvelope(nil, kindProbe, 0, s.cfg.Node, "", nil)
	lossy, _ := s.cfg.Bus.(bus.Lossy)
	var losses uint64
	if lossy != nil {
		losses = lossy.Losses()
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if lossy != nil {
			if n := lossy.Losses(); n != losses {
				// Messages to this node may have been lost: nothing in
				// flight across the bus can be trusted to complete.
				losses = n
				s.log.Warn("bus lost messages; failing streams across nodes")
				s.remote.failAll(ErrLost)
			}
		}
		for _, n := range s.remote.nodes() {
			err := s.probe(n, probe)
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("node unreachable; failing its streams", "peer", n, "err", err)
				s.remote.failNode(n, fmt.Errorf("%w: node %s: %v", ErrTunnelGone, n, err))
			}
		}
		for _, n := range s.gone.list() {
			s.probe(n, probe)
		}
	}
}

// probe publishes a probe to node and notes whether it has a subscriber.
func (s *Server) probe(node string, probe []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, probeInterval)
	defer cancel()
	err := s.cfg.Bus.Publish(ctx, node, probe)
	switch {
	case err == nil:
		s.gone.clear(node)
	case errors.Is(err, bus.ErrNoSubscriber):
		s.nodeGone(node)
	}
	return err
}

// nodes lists the other nodes that streams of this node cross to.
func (r *remoteStreams) nodes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool)
	for _, v := range r.visitors {
		seen[v.node] = true
	}
	for k := range r.relays {
		seen[k.node] = true
	}
	nodes := make([]string, 0, len(seen))
	for n := range seen {
		nodes = append(nodes, n)
	}
	return nodes
}

// failAll fails every stream that crosses the bus.
func (r *remoteStreams) failAll(err error) {
	for _, n := range r.nodes() {
		r.failNode(n, err)
	}
}

// failNode fails every stream that crosses to node.
func (r *remoteStreams) failNode(node string, err error) {
	r.mu.Lock()
	var sinks []sink
	for _, v := range r.visitors {
		if v.node == node {
			sinks = append(sinks, v.k)
		}
	}
	for k, rl := range r.relays {
		if k.node == node {
			sinks = append(sinks, rl)
		}
	}
	r.mu.Unlock()
	for _, k := range sinks {
		k.fail(err)
	}
}

// fromBus handles a message another node published to this one. It runs
// on the bus's delivery goroutine, so it never blocks and never publishes.
func (s *Server) fromBus(msg []byte) {
	e, err := parseEnvelope(msg)
	if err != nil {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	switch e.kind {
	case kindToVisitor:
		s.toVisitor(e)
	case kindToLink:
		s.toLink(e)
	case kindControl:
		s.fromControl(e)
	case kindAnswer:
		s.fromAnswer(e)
	}
}

// toVisitor hands frames from a remote link to the visitor's stream.
func (s *Server) toVisitor(e envelope) {
	first, ok := e.next()
	if !ok {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	id := frameID(first)
	s.remote.mu.Lock()
	v := s.remote.visitors[id]
	s.remote.mu.Unlock()
	if v == nil || v.node != string(e.from) {
		s.stats.UnknownStream.Add(1)
		return
	}
	if e.seq != v.recv {
		v.k.fail(fmt.Errorf("%w: got message %d, want %d", ErrLost, e.seq, v.recv))
		return
	}
	v.recv++
	for frame := first; ok; frame, ok = e.next() {
		b, f, err := copyFrame(frame)
		if err != nil || f.ID != id {
			b.Free()
			s.stats.ProtocolViolations.Add(1)
			v.k.fail(fmt.Errorf("%w: %v", ErrProtocol, err))
			return
		}
		v.k.deliver(f, b)
	}
}

// copyFrame copies a frame out of a bus message into a pooled buffer.
func copyFrame(frame []byte) (*link.Buffer, messages.Frame, error) {
	b := link.NewBuffer()
	b.B = append(b.B, frame...)
	f, err := messages.Parse(b.B)
	return b, f, err
}

// toLink hands frames from a remote visitor to a link on this node,
// opening a relay for a new stream.
func (s *Server) toLink(e envelope) {
	frame, ok := e.next()
	if !ok {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	f, err := messages.Parse(frame)
	if err != nil {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	key := relayKey{node: string(e.from), id: f.ID}
	s.remote.mu.Lock()
	rl := s.remote.relays[key]
	s.remote.mu.Unlock()
	if rl == nil {
		if (f.Type != messages.TypeHTTPRequest && f.Type != messages.TypeWSRequest) || e.seq != 0 {
			s.stats.UnknownStream.Add(1)
			return
		}
		rl = s.openRelay(key, string(e.label), f.Type == messages.TypeWSRequest)
	}
	rl.fromVisitor(e.seq, e, frame)
}
