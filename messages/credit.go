package messages

import (
	"encoding/binary"
	"fmt"
)

// InitialWindow is the credit each side of a WebSocket stream starts with:
// how much it may send before the receiver grants more. A frame costs what
// the receiver holds for it while it waits (see PROTOCOL.md, Credit).
const InitialWindow = 1 << 20

// MaxWindow is the widest a receiver makes a stream's window by granting
// more than it consumed (see PROTOCOL.md, Credit): the proxy widens a
// body that crosses proxy nodes, where credit takes longer to return,
// while its visitor keeps up.
const MaxWindow = 4 << 20

// AppendCredit appends a Credit payload: a uint32 increment.
func AppendCredit(dst []byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32(dst, n)
}

// ParseCredit decodes a Credit payload.
func ParseCredit(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: credit of %d bytes", ErrMalformed, len(p))
	}
	return binary.BigEndian.Uint32(p), nil
}
