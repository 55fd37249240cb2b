package redisbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/bus"
)

// Publishes are pipelined. Callers queue them, and a few publisher
// goroutines take whatever is queued and send it to Redis in one write,
// reading the answers in one round trip. Under load a node pays one write
// and one read for many messages, and so does Redis; an idle node pays one
// channel hand-off per message. Each caller still waits for its own
// message's answer, so a caller that publishes in turn keeps its order.
const (
	publishers   = 2    // pipelines in flight at once
	maxPipeline  = 128  // messages in one pipeline
	publishQueue = 1024 // publishes waiting for a publisher; callers block beyond it
)

type publishReq struct {
	ctx     context.Context
	channel string
	env     []byte
	done    chan publishResult // buffered; the publisher answers once
}

type publishResult struct {
	n   int64 // subscribers that received the message
	err error
}

var publishReqs = sync.Pool{New: func() any { return &publishReq{done: make(chan publishResult, 1)} }}

// sealBuf is what a Publish seals its message in. It goes back to the
// Bus's pool once the publisher is done with the envelope, so a busy Bus
// seals without allocating; one that grew past maxPooledSeal is left to
// the garbage collector instead.
type sealBuf struct {
	buf []byte // the mac input: the channel's prefix, then the envelope
	n   nonce
}

const maxPooledSeal = 256 << 10

// sealed seals msg for channel into sb and returns the envelope, which
// aliases sb.
func (b *Bus) sealed(sb *sealBuf, channel string, msg []byte) []byte {
	var env []byte
	sb.buf, env = seal(b.mac, &sb.n, sb.buf, channel, time.Now(), msgID{b.sender, b.counter.Add(1)}, msg)
	return env
}

// recycle returns sb to the pool. Only once nothing reads its envelope.
func (b *Bus) recycle(sb *sealBuf) {
	if cap(sb.buf) <= maxPooledSeal {
		b.seals.Put(sb)
	}
}

// Publish seals msg and publishes it to node's channel. It fails with an
// error wrapping bus.ErrNoSubscriber when no subscriber received it, and
// with bus.ErrClosed after Close, and at once with ErrSecretMismatch when
// node's heartbeats show it has another cluster secret (heartbeat.go). It
// returns within Options.Timeout, or by ctx's deadline when that is later.
func (b *Bus) Publish(ctx context.Context, node string, msg []byte) error {
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if err := b.hb.refuses(node); err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("redisbus: publish to %q: %w", node, err)
	}
	channel := b.channel(node)
	sb := b.seals.Get().(*sealBuf)
	env := b.sealed(sb, channel, msg)
	ctx, cancel := context.WithTimeout(ctx, b.callTimeout(ctx))
	defer cancel()

	r := publishReqs.Get().(*publishReq)
	r.ctx, r.channel, r.env = ctx, channel, env
	select {
	case b.queue <- r:
	case <-ctx.Done():
		r.ctx, r.env = nil, nil
		publishReqs.Put(r)
		b.recycle(sb)
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("redisbus: publish to %q: %w", node, ctx.Err())
	case <-b.quit:
		return bus.ErrClosed
	}
	var res publishResult
	select {
	case res = <-r.done:
		// The publisher is done with r and its envelope.
		r.ctx, r.env = nil, nil
		publishReqs.Put(r)
		b.recycle(sb)
	case <-ctx.Done():
		// r and sb stay with the publisher, which answers into r's
		// buffer; both are left to the garbage collector.
		res.err = ctx.Err()
	case <-b.quit:
		return bus.ErrClosed
	}
	switch {
	case res.err != nil:
		b.stats.publishErrors.Add(1)
		b.reloadShards()
		return fmt.Errorf("redisbus: publish to %q: %w", node, res.err)
	case res.n == 0:
		b.stats.noSubscriber.Add(1)
		return fmt.Errorf("redisbus: publish to %q: %w", node, bus.ErrNoSubscriber)
	}
	b.stats.published.Add(1)
	return nil
}

func (b *Bus) startPublishers() {
	b.queue = make(chan *publishReq, publishQueue)
	b.quit = make(chan struct{})
	for range publishers {
		b.publishers.Go(b.publishLoop)
	}
}

// stopPublishers ends the publishers; callers still waiting get
// bus.ErrClosed.
func (b *Bus) stopPublishers() {
	b.stopOnce.Do(func() { close(b.quit) })
	b.publishers.Wait()
}

// publishLoop sends what is queued, as one pipeline per turn.
func (b *Bus) publishLoop() {
	batch := make([]*publishReq, 0, maxPipeline)
	for {
		select {
		case r := <-b.queue:
			batch = append(batch[:0], r)
		case <-b.quit:
			return
		}
	more:
		for len(batch) < maxPipeline {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
			default:
				break more
			}
		}
		b.publishBatch(batch)
		clear(batch)
	}
}

// callTimeout is how long a call on behalf of ctx may take: Timeout, or
// longer when ctx has a later deadline.
func (b *Bus) callTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(b.timeout, time.Until(dl))
	}
	return b.timeout
}

// publishBatch publishes batch and answers each request. It touches no
// request after answering it.
func (b *Bus) publishBatch(batch []*publishReq) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- publishResult{err: err} // gave up while queued
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		r := live[0]
		n, err := b.publishCmd(r.ctx, b.client, r).Result()
		r.done <- publishResult{n, err}
		return
	}
	var timeout time.Duration
	for _, r := range live {
		timeout = max(timeout, b.callTimeout(r.ctx))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(live))
	for i, r := range live {
		cmds[i] = b.publishCmd(ctx, pipe, r)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own result
	for i, r := range live {
		n, err := cmds[i].Result()
		r.done <- publishResult{n, err}
	}
}

func (b *Bus) publishCmd(ctx context.Context, c redis.Cmdable, r *publishReq) *redis.IntCmd {
	if b.sharded {
		return c.SPublish(ctx, r.channel, r.env)
	}
	return c.Publish(ctx, r.channel, r.env)
}
