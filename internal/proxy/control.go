package proxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"keyhole/bus"
)

// Control requests: what the admin API asks of every node. The node the
// call arrives at runs it itself and sends it over the bus, in a
// kindControl envelope whose payload is a controlRequest in JSON, to every
// other node the bus knows of (bus.Directory); each answers with a
// kindAnswer envelope holding a controlAnswer. Admin calls are rare, so
// JSON costs nothing that matters.
const (
	opList       = "list"
	opDisconnect = "disconnect"
	opBlock      = "block"
	opUnblock    = "unblock"
)

// controlWait bounds how long a node waits for the others' answers.
const controlWait = 2 * time.Second

// Errors links are closed with by the admin API.
var (
	ErrBlocked      = errors.New("this key is blocked on this proxy")
	ErrDisconnected = errors.New("disconnected by the proxy's operator")
)

type controlRequest struct {
	ID    string `json:"id"`
	Op    string `json:"op"`
	Label string `json:"label,omitempty"`
}

type controlAnswer struct {
	ID      string       `json:"id"`
	Node    string       `json:"node"`
	Tunnels []TunnelInfo `json:"tunnels,omitempty"`
	Closed  int          `json:"closed"`
}

// TunnelInfo describes one tunnel's links on one node.
type TunnelInfo struct {
	Label    string     `json:"label"`
	Node     string     `json:"node"`
	Links    int        `json:"links"`
	Since    time.Time  `json:"since"`            // the oldest link's registration
	Remote   string     `json:"remote,omitempty"` // the oldest link's peer
	Requests uint64     `json:"requests"`         // streams opened on the links, summed
	Replicas []LinkInfo `json:"replicas"`
}

// LinkInfo describes one link.
type LinkInfo struct {
	Remote   string    `json:"remote"`
	Since    time.Time `json:"since"`
	Requests uint64    `json:"requests"`
}

// control holds the admin calls of this node waiting for other nodes.
type control struct {
	mu    sync.Mutex // protects waits
	waits map[string]chan controlAnswer
}

// clusterResult is what every node answered to one control request.
type clusterResult struct {
	answers []controlAnswer
	missing []string // nodes that did not answer in time
}

func (r clusterResult) closed() int {
	n := 0
	for _, a := range r.answers {
		n += a.Closed
	}
	return n
}

func (r clusterResult) nodes() []string {
	var ns []string
	for _, a := range r.answers {
		ns = append(ns, a.Node)
	}
	slices.Sort(ns)
	return ns
}

// clusterOp runs op on this node and every other node the bus knows of,
// and returns their answers once all have answered or controlWait passed.
func (s *Server) clusterOp(ctx context.Context, op, label string) clusterResult {
	req := controlRequest{ID: rand.Text(), Op: op, Label: label}
	var others []string
	if d, ok := s.cfg.Bus.(bus.Directory); ok {
		for _, n := range d.Nodes() {
			if n != s.cfg.Node {
				others = append(others, n)
			}
		}
	}
	answers := make(chan controlAnswer, len(others))
	s.ctl.mu.Lock()
	if s.ctl.waits == nil {
		s.ctl.waits = make(map[string]chan controlAnswer)
	}
	s.ctl.waits[req.ID] = answers
	s.ctl.mu.Unlock()
	defer func() {
		s.ctl.mu.Lock()
		delete(s.ctl.waits, req.ID)
		s.ctl.mu.Unlock()
	}()
	payload, _ := json.Marshal(req)
	msg := appendControl(nil, kindControl, s.cfg.Node, payload)
	pending := make(map[string]bool)
	var res clusterResult
	for _, n := range others {
		if err := s.cfg.Bus.Publish(ctx, n, msg); err != nil {
			s.log.Warn("admin request not delivered", "peer", n, "op", op, "err", err)
			res.missing = append(res.missing, n)
			continue
		}
		pending[n] = true
	}
	res.answers = append(res.answers, s.localOp(req))
	t := time.NewTimer(controlWait)
	defer t.Stop()
	for len(pending) > 0 {
		select {
		case a := <-answers:
			if pending[a.Node] {
				delete(pending, a.Node)
				res.answers = append(res.answers, a)
			}
		case <-t.C:
			for n := range pending {
				res.missing = append(res.missing, n)
			}
			pending = nil
		case <-ctx.Done():
			for n := range pending {
				res.missing = append(res.missing, n)
			}
			pending = nil
		}
	}
	if res.missing == nil {
		res.missing = []string{}
	}
	slices.Sort(res.missing)
	return res
}

// localOp runs a control request on this node.
func (s *Server) localOp(req controlRequest) controlAnswer {
	a := controlAnswer{ID: req.ID, Node: s.cfg.Node}
	switch req.Op {
	case opList:
		a.Tunnels = s.tunnelInfo()
	case opDisconnect:
		a.Closed = s.closeLabel(req.Label, http.StatusServiceUnavailable, ErrDisconnected)
	case opBlock:
		s.markBlocked(req.Label, true)
		a.Closed = s.closeLabel(req.Label, http.StatusForbidden, ErrBlocked)
	case opUnblock:
		s.markBlocked(req.Label, false)
	}
	return a
}

// closeLabel closes every link of label on this node, telling each client
// why, and returns how many it closed.
func (s *Server) closeLabel(label string, code int, err error) int {
	t := s.tunnel(label)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	links := slices.Clone(t.links)
	t.mu.Unlock()
	for _, l := range links {
		l.log.Info("closing link", "reason", err)
		l.closeWith(code, err)
	}
	return len(links)
}

// tunnelInfo describes this node's tunnels.
func (s *Server) tunnelInfo() []TunnelInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	infos := make([]TunnelInfo, 0, len(s.tunnels))
	for label, t := range s.tunnels {
		info := TunnelInfo{Label: label, Node: s.cfg.Node}
		t.mu.Lock()
		for _, l := range t.links {
			li := LinkInfo{Remote: l.remote, Since: l.since, Requests: l.requests.Load()}
			info.Replicas = append(info.Replicas, li)
			info.Requests += li.Requests
			if info.Since.IsZero() || li.Since.Before(info.Since) {
				info.Since, info.Remote = li.Since, li.Remote
			}
		}
		t.mu.Unlock()
		info.Links = len(info.Replicas)
		infos = append(infos, info)
	}
	return infos
}

// fromControl handles a control request from another node. It runs on the
// bus's delivery goroutine, so the work and the answer go to a goroutine
// of their own.
func (s *Server) fromControl(e envelope) {
	var req controlRequest
	if err := json.Unmarshal(e.frames, &req); err != nil {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	from := string(e.from)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		a := s.localOp(req)
		payload, _ := json.Marshal(a)
		ctx, cancel := context.WithTimeout(s.ctx, controlWait)
		defer cancel()
		if err := s.cfg.Bus.Publish(ctx, from, appendControl(nil, kindAnswer, s.cfg.Node, payload)); err != nil {
			s.log.Warn("admin answer not delivered", "peer", from, "err", err)
		}
	}()
}

// fromAnswer hands another node's answer to the call waiting for it.
func (s *Server) fromAnswer(e envelope) {
	var a controlAnswer
	if err := json.Unmarshal(e.frames, &a); err != nil {
		s.stats.ProtocolViolations.Add(1)
		return
	}
	a.Node = string(e.from)
	s.ctl.mu.Lock()
	ch := s.ctl.waits[a.ID]
	s.ctl.mu.Unlock()
	if ch == nil {
		return // too late
	}
	select {
	case ch <- a:
	default:
	}
}

// appendControl appends a control envelope: no seq, no label, and the
// JSON payload in place of frames.
func appendControl(dst []byte, kind byte, from string, payload []byte) []byte {
	dst = appendEnvelope(dst, kind, 0, from, "")
	return append(dst, payload...)
}

// blockedLocally says whether this node has been told label is blocked.
func (s *Server) blockedLocally(label string) bool {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	_, ok := s.blockedKeys[label]
	return ok
}

func (s *Server) markBlocked(label string, blocked bool) {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	if blocked {
		s.blockedKeys[label] = struct{}{}
	} else {
		delete(s.blockedKeys, label)
	}
}

// isBlocked asks the blocklist whether label is blocked, and what this
// node was last told when the blocklist cannot answer.
func (s *Server) isBlocked(ctx context.Context, label string) bool {
	blocked, err := s.cfg.Blocklist.Blocked(ctx, label)
	if err != nil {
		s.log.Warn("blocklist not reachable; using what this node was told", "tunnel", label, "err", err)
		return s.blockedLocally(label)
	}
	return blocked
}
