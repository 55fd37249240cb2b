// Package tunnel publishes an HTTP service through a keyhole proxy under a
// public hostname derived from an Ed25519 key, with no listening port:
// the tunnel dials out to the proxy over one WebSocket, proves its key,
// and answers the requests visitors send to its hostname.
//
// The service is either an http.Handler served in this process
// (Config.Handler) or a private service reached over the network
// (Config.Target), which is what keyhole's client command does.
//
// A Handler sees each visitor request as a genuine HTTP/1.1 request on a
// connection held in memory, so everything a handler does on a net/http
// server works: streaming with http.Flusher, deadlines through
// http.ResponseController, and WebSocket upgrades with any library that
// hijacks the connection (gorilla's websocket.Upgrader among them). The
// proxy sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host;
// the request's RemoteAddr names the in-memory connection, not the
// visitor.
//
// Run keeps the link registered: it sends keepalive pings, reconnects
// with jittered exponential backoff after a failure, moves to a new link
// when the proxy drains, and stops on a failure that trying again will
// not mend (a refused key, a server that is no keyhole proxy; see
// PermanentError). Cancelling its context closes the link, ends every
// request and returns once every goroutine the tunnel started has ended.
package tunnel
