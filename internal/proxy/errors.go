package proxy

import (
	"context"
	"errors"
	"net/http"

	"keyhole/bus"
	"keyhole/internal/identity"
	"keyhole/limiter"
	"keyhole/messages"
)

// Sentinel errors of the request path. status maps each to what the
// visitor sees; nothing else in the package picks a status.
var (
	ErrNoTunnel         = errors.New("no tunnel is connected for this hostname")
	ErrNotOurs          = errors.New("hostname is not served by this proxy")
	ErrTunnelGone       = errors.New("the tunnel disconnected before answering")
	ErrTimeout          = errors.New("the tunnel did not answer in time")
	ErrResponseTooLarge = errors.New("response body over the size limit")
	ErrRateLimited      = errors.New("too many requests for this tunnel")
	ErrRouting          = errors.New("cannot reach the node holding this tunnel")
	ErrDraining         = errors.New("proxy is shutting down")
	ErrProtocol         = errors.New("protocol violation")
	ErrReplaced         = errors.New("replaced by a newer link from the same client")
	ErrLeaving          = errors.New("the client is leaving this link for a new one")
	ErrNotAllowed       = errors.New("this key is not allowed on this proxy")
	ErrBadBody          = errors.New("malformed request body")
	ErrBodyTimeout      = errors.New("the request body stopped arriving")
	ErrLength           = errors.New("body length differs from the declared length")
	ErrRegisterLimited  = errors.New("too many registrations; try again later")
	ErrCrowdedOut       = errors.New("too many links waiting to register; the longest waiting was dropped")
)

// upstreamError is an Error frame from the client: the private service
// failed, with the status and message the client chose.
type upstreamError struct {
	code int
	msg  string
}

func (e *upstreamError) Error() string { return e.msg }

func status(err error) int {
	var ue *upstreamError
	switch {
	case errors.As(err, &ue):
		if ue.code >= 400 && ue.code <= 599 {
			return ue.code
		}
		return http.StatusBadGateway
	case errors.Is(err, ErrNoTunnel), errors.Is(err, ErrNotOurs):
		return http.StatusNotFound
	case errors.Is(err, ErrRouting), errors.Is(err, bus.ErrNoSubscriber), errors.Is(err, ErrDraining), errors.Is(err, ErrLeaving):
		// Before timeouts: a Redis call that timed out is a routing failure.
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, limiter.ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrRegisterLimited):
		return http.StatusTooManyRequests
	default:
		return http.StatusBadGateway
	}
}

// refusalReasons label keyhole_proxy_registrations_refused_total.
var refusalReasons = []string{"bad_key", "bad_signature", "stale", "not_allowed", "version", "malformed", "no_answer"}

// refusalReason names why a registration was refused, for the metric.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, identity.ErrBadKey):
		return "bad_key"
	case errors.Is(err, identity.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, identity.ErrStale):
		return "stale"
	case errors.Is(err, ErrNotAllowed):
		return "not_allowed"
	case errors.Is(err, messages.ErrVersion):
		return "version"
	case errors.Is(err, messages.ErrMalformed), errors.Is(err, ErrProtocol):
		return "malformed"
	default:
		return "no_answer" // the client went away or timed out mid-exchange
	}
}
