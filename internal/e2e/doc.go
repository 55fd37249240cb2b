// Package e2e holds keyhole's end-to-end tests: a real proxy, real
// clients and real backends in one process on loopback ports, with
// visitors speaking real HTTP and WebSocket.
package e2e
