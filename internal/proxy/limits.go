package proxy

import "time"

// MaxHeaderBytes bounds a visitor's request head so that its encoding
// always fits in one frame.
const MaxHeaderBytes = 48 << 10

// streamWriteGrace is added to the request timeout to bound one write of
// a response body to a visitor.
const streamWriteGrace = 30 * time.Second
