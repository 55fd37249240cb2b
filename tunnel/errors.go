package tunnel

import "keyhole/internal/client"

// ErrRefused means the proxy refused the registration; the error is a
// *RefusedError saying why.
var ErrRefused = client.ErrRefused

// RefusedError is a proxy's refusal of a registration: its status and
// its reason.
type RefusedError = client.RefusedError

// UpgradeError is an answer other than a WebSocket handshake to the
// link's upgrade: the server at Config.Proxy is not a keyhole proxy, or
// not at that address.
type UpgradeError = client.UpgradeError

// PermanentError is a failure that trying again will not mend until
// someone changes something: what is wrong, the detail, and the fix. Run
// returns it unless Config.RetryPermanent is set.
type PermanentError = client.PermanentError
