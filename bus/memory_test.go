package bus_test

import (
	"testing"

	"keyhole/bus"
	"keyhole/bus/bustest"
)

func TestMemoryContract(t *testing.T) {
	bustest.Run(t, func(t *testing.T) (bus.Bus, bus.Bus) {
		m := bus.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m, m
	})
}
