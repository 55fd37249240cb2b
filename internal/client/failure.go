package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"keyhole/internal/link"
	"keyhole/messages"
)

// ErrRefused means the proxy refused the registration; the error is a
// *RefusedError saying why.
var ErrRefused = errors.New("registration refused")

// RefusedError is a proxy's refusal of a registration, an Error frame in
// answer to it: its status and its reason.
type RefusedError struct {
	Code   int    // 400 unreadable, 401 bad signature or clock, 403 key not allowed, 505 another protocol version
	Reason string // the proxy's text
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("registration refused (%d): %s", e.Code, e.Reason)
}

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// refused reads an Error frame's status as a refusal. The proxy's text
// starts with "registration refused: " itself; it is said once.
func refused(st messages.Status) *RefusedError {
	return &RefusedError{Code: int(st.Code), Reason: strings.TrimPrefix(st.Text, ErrRefused.Error()+": ")}
}

// UpgradeError is an answer other than 101 Switching Protocols to the
// link's WebSocket upgrade, or a 101 that is not a WebSocket handshake.
type UpgradeError struct {
	URL        string
	Status     string // e.g. "404 Not Found"
	Code       int
	Body       string        // the start of the body
	RetryAfter time.Duration // the answer's Retry-After (429, 503), or 0
}

// retryAfter is how long the proxy asked a refused attempt to wait (a
// 429 over its registration limits, a 503 while it drains), or 0.
func retryAfter(err error) time.Duration {
	var ue *UpgradeError
	if errors.As(err, &ue) {
		return ue.RetryAfter
	}
	return 0
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("connect %s: the server answered %s", e.URL, e.Status)
}

// PermanentError is a failure that trying again will not mend until
// someone changes something: what is wrong, the detail, and the fix.
type PermanentError struct {
	Cause  string
	Detail string
	Fix    string
	Err    error
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("%s: %s; fix: %s", e.Cause, e.Detail, e.Fix)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// permanent returns the failure to connect or register as a
// *PermanentError when it will not mend by itself, and nil when trying
// again may help (a proxy that is down, restarting, draining, busy or out
// of reach).
func (c *Client) permanent(err error) *PermanentError {
	if err == nil {
		return nil
	}
	p := &PermanentError{Detail: err.Error(), Err: err}
	var re *RefusedError
	var ue *UpgradeError
	switch {
	case errors.As(err, &re):
		p.Detail = re.Reason
		if !c.refusedCause(p, re.Code) {
			return nil
		}
	case errors.As(err, &ue):
		if !c.upgradeCause(p, ue) {
			return nil
		}
	case errors.Is(err, messages.ErrVersion), errors.Is(err, messages.ErrMalformed):
		p.Cause = "the server at --proxy does not speak this client's protocol"
		p.Fix = "check that --proxy names a keyhole proxy, and use a client and proxy of the same protocol version"
	case tlsCause(p, err):
	default:
		return nil
	}
	return p
}

// refusedCause explains a refused registration; false if it may pass when
// tried again.
func (c *Client) refusedCause(p *PermanentError, code int) bool {
	switch code {
	case http.StatusForbidden:
		p.Cause = "the proxy does not allow this key (403)"
		p.Fix = "ask the proxy's operator to add the label " + c.label + " to its --allow-keys file"
	case http.StatusUnauthorized:
		p.Cause = "the proxy refused this key's registration (401)"
		p.Fix = "check this machine's clock (registrations are timestamped and must be within a minute of the proxy's) and that --key is an intact key file"
	case http.StatusBadRequest:
		p.Cause = "the proxy could not read the registration (400)"
		p.Fix = "use a client of the proxy's version"
	case link.StatusVersion:
		p.Cause = "the proxy speaks another protocol version (505)"
		p.Fix = "use a client and proxy of the same protocol version"
	default:
		return false
	}
	return true
}

// upgradeCause explains an upgrade answered with something else than a
// link; false for answers that pass (a proxy draining or busy, a front
// whose nodes are restarting).
func (c *Client) upgradeCause(p *PermanentError, e *UpgradeError) bool {
	switch {
	case e.Code == http.StatusTooManyRequests, e.Code == http.StatusRequestTimeout, e.Code >= 500:
		return false
	case e.Code == http.StatusBadRequest && strings.Contains(e.Body, "HTTPS"):
		p.Cause = "--proxy names a TLS port with ws://"
		p.Fix = "use wss:// in --proxy"
	case e.Code == http.StatusSwitchingProtocols:
		p.Cause = "the server at --proxy is not a keyhole proxy (its 101 is no WebSocket handshake)"
		p.Fix = "point --proxy at the keyhole proxy's apex host, e.g. wss://tunnel.example.com"
	default:
		p.Cause = "the server at --proxy is not a keyhole proxy, or not at this host name"
		p.Fix = "point --proxy at the keyhole proxy's apex host (its --domain, or its IP address), e.g. wss://tunnel.example.com"
	}
	return true
}

// tlsCause explains TLS failures that trying again will not mend.
func tlsCause(p *PermanentError, err error) bool {
	var rh tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &rh):
		p.Cause = "--proxy names a plain-HTTP port with wss://"
		p.Fix = "use ws:// in --proxy, or the proxy's TLS port"
	case errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid), errors.As(err, &verify):
		p.Cause = "the proxy's TLS certificate is not trusted for this host name"
		p.Fix = "use the host name the certificate names, or add its CA to the system roots or SSL_CERT_FILE"
	case strings.Contains(err.Error(), "malformed HTTP response"):
		p.Cause = "the server at --proxy does not answer in HTTP (a TLS port reached with ws://?)"
		p.Fix = "use wss:// for a TLS port, and check that --proxy names a keyhole proxy"
	default:
		return false
	}
	return true
}
