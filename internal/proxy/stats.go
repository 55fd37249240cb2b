package proxy

import (
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
)

// Stats counts what the proxy did, every drop, rejection and timeout
// included. All fields are safe for concurrent use.
type Stats struct {
	LinksAccepted      atomic.Int64 // registrations that succeeded
	LinksRefused       atomic.Int64 // registrations refused (bad key, signature, time, frame)
	LinksActive        atomic.Int64
	RegisterLimited    atomic.Int64 // 429 on the link's upgrade: over the registration rate of an address or in total
	RegisterDropped    atomic.Int64 // sockets waiting to register, dropped oldest first over MaxPending
	Requests           atomic.Int64 // visitor requests routed to a tunnel
	NoTunnel           atomic.Int64 // 404 for a well-formed label with no client
	NotOurs            atomic.Int64 // 404 for a host outside the domain
	Timeouts           atomic.Int64 // 504
	TunnelGone         atomic.Int64 // 502 because a link dropped mid-request
	UpstreamErrors     atomic.Int64 // 502 reported by the client
	RequestTooLarge    atomic.Int64 // 413
	ResponseTooLarge   atomic.Int64 // 502 because a response passed the cap
	RateLimited        atomic.Int64 // 429
	Retried            atomic.Int64 // requests moved to another replica
	UnknownStream      atomic.Int64 // frames for streams that had already ended
	StreamOverflow     atomic.Int64 // streams closed because their queue was full
	ProtocolViolations atomic.Int64 // frames a client may not send
	VersionMismatches  atomic.Int64 // links closed on a frame of another protocol version (answered 505)
	RemoteRequests     atomic.Int64 // requests served through another node
	RoutingErrors      atomic.Int64 // requests that could not reach another node
	WebSockets         atomic.Int64 // visitor WebSockets opened
	WebSocketsActive   atomic.Int64
	CookieDomains      atomic.Int64 // Set-Cookie Domain attributes removed (HostOnlyCookies)
	BadBodies          atomic.Int64 // 400 for a malformed request body (bad chunked framing)
	BodyTimeouts       atomic.Int64 // request bodies cut after stopping (408 if unanswered)
	LengthMismatches   atomic.Int64 // bodies shorter or longer than their declared length
	LookalikeHeaders   atomic.Int64 // visitor fields dropped for spelling a protected one with '_' (X_Forwarded_For)
	AdminRefused       atomic.Int64 // admin API calls refused 401: no token or the wrong one
}

// WriteTo writes the counters in the Prometheus text format.
func (s *Stats) WriteTo(w io.Writer) (int64, error) {
	var n int64
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		val := v.Field(i).Addr().Interface().(*atomic.Int64).Load()
		m, err := fmt.Fprintf(w, "keyhole_proxy_%s %d\n", snake(name), val)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
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
