package registry_test

import (
	"testing"

	"keyhole/registry"
	"keyhole/registry/registrytest"
)

func TestMemoryContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) (registry.Registry, registry.Registry) {
		m := registry.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m, m
	})
}
