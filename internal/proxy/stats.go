package proxy

import (
	"reflect"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts what the proxy did, every drop, rejection and timeout
// included. All fields are safe for concurrent use. Each is served as
// keyhole_proxy_<name in snake case>, with _total for counters; its help
// tag is the metric's HELP; gauge marks a gauge, and metric:"-" a field
// served in another form.
type Stats struct {
	LinksAccepted      atomic.Int64 `help:"Client registrations that succeeded."`
	LinksRefused       atomic.Int64 `metric:"-"` // served by reason as registrations_refused_total
	LinksActive        atomic.Int64 `help:"Client links up on this node." kind:"gauge"`
	RegisterLimited    atomic.Int64 `help:"Link upgrades answered 429: over the registration rate of an address or in total."`
	RegisterDropped    atomic.Int64 `help:"Sockets waiting to register, dropped oldest first over --register-pending."`
	Requests           atomic.Int64 `help:"Visitor HTTP requests routed to a tunnel."`
	NoTunnel           atomic.Int64 `help:"Requests answered 404: a well-formed label with no client."`
	NotOurs            atomic.Int64 `help:"Requests answered 404: a host outside the domain."`
	Timeouts           atomic.Int64 `help:"Requests answered 504: the tunnel did not answer in time."`
	TunnelGone         atomic.Int64 `help:"Requests answered 502 because a link dropped mid-request."`
	UpstreamErrors     atomic.Int64 `help:"Requests failed by the client: the private service failed or refused."`
	RequestTooLarge    atomic.Int64 `help:"Requests answered 413: body over --max-body."`
	ResponseTooLarge   atomic.Int64 `help:"Responses failed with 502 or cut off: body over --max-body."`
	RateLimited        atomic.Int64 `help:"Requests answered 429: over --tunnel-rate for their hostname."`
	Retried            atomic.Int64 `help:"Requests moved to another replica or node after a link or route went away."`
	UnknownStream      atomic.Int64 `help:"Frames for streams that had already ended."`
	StreamOverflow     atomic.Int64 `help:"Streams closed because their queue was full."`
	ProtocolViolations atomic.Int64 `help:"Frames a client may not send."`
	VersionMismatches  atomic.Int64 `help:"Links closed on a frame of another protocol version (answered 505)."`
	RemoteRequests     atomic.Int64 `help:"Requests served through another node."`
	RoutingErrors      atomic.Int64 `help:"Requests that could not reach another node (answered 503)."`
	NodesGone          atomic.Int64 `help:"Other nodes found without a subscriber and routed around."`
	WebSockets         atomic.Int64 `help:"Visitor WebSockets asked for."`
	WebSocketsActive   atomic.Int64 `help:"Visitor WebSockets open on this node." kind:"gauge"`
	CookieDomains      atomic.Int64 `help:"Set-Cookie Domain attributes removed (--host-only-cookies)."`
	BadBodies          atomic.Int64 `help:"Requests answered 400: malformed request body (bad chunked framing)."`
	BodyTimeouts       atomic.Int64 `help:"Request bodies cut after they stopped arriving (408 if unanswered)."`
	LengthMismatches   atomic.Int64 `help:"Bodies shorter or longer than their declared length."`
	LookalikeHeaders   atomic.Int64 `help:"Visitor header fields dropped for spelling a protected one with '_' (X_Forwarded_For)."`
	VisitorBytesIn     atomic.Int64 `help:"Bytes received from visitors: request bodies, and WebSocket connections' bytes once upgraded."`
	VisitorBytesOut    atomic.Int64 `help:"Bytes sent to visitors: response bodies, and WebSocket connections' bytes once upgraded."`
	AdminRefused       atomic.Int64 `help:"Admin API calls refused 401: no token or the wrong one."`
}

// collectors returns a collector reading each field of s.
func (s *Stats) collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("metric") == "-" {
			continue
		}
		n := v.Field(i).Addr().Interface().(*atomic.Int64)
		read := func() float64 { return float64(n.Load()) }
		name := "keyhole_proxy_" + snake(f.Name)
		if f.Tag.Get("kind") == "gauge" {
			cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: f.Tag.Get("help")}, read))
		} else {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name + "_total", Help: f.Tag.Get("help")}, read))
		}
	}
	return cs
}

func snake(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			if i > 0 {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}
