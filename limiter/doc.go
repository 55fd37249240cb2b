// Package limiter holds keyhole's rate limiters and size caps: the checks a
// proxy makes before it reads, forwards or answers anything.
//
//   - NewMessages bounds how many messages one client connection may send; the
//     caller waits on it, so an over-eager client is slowed, not dropped.
//   - Tunnels bounds visitor requests per hostname; a refusal carries the time
//     until the next request would pass, for a 429's Retry-After.
//   - Registrations bounds client registrations per source address and in
//     total, before the link's upgrade, with the same kind of refusal.
//   - CheckLength and CappedReader cap request and response bodies at a byte
//     count, refusing a declared length before any body is read and a streamed
//     body as soon as it runs one byte over.
//
// Rates are in events per second; 0 means unlimited. The package starts no
// goroutines.
package limiter
