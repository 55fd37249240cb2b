package limiter

import (
	"net/netip"
	"testing"
	"time"
)

func TestRegistrationsPerAddressThenGlobal(t *testing.T) {
	r := NewRegistrations(1, 3, 10, 5)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if ok, wait := r.Allow(a, epoch); !ok {
			t.Fatalf("registration %d of a within its burst: refused (retry %v)", i, wait)
		}
	}
	ok, wait := r.Allow(a, epoch)
	if ok || wait != time.Second {
		t.Fatalf("a past its burst: got %v retry %v, want refused, retry 1s", ok, wait)
	}
	for i := range 2 {
		if ok, wait := r.Allow(b, epoch); !ok {
			t.Fatalf("registration %d of b: refused (retry %v), want allowed", i, wait)
		}
	}
	// Five have passed: the global burst is spent, whatever the address.
	ok, wait = r.Allow(netip.MustParseAddr("192.0.2.3"), epoch)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("past the global burst: got %v retry %v, want refused, retry 100ms", ok, wait)
	}
	if ok, wait := r.Allow(netip.MustParseAddr("192.0.2.3"), epoch.Add(100*time.Millisecond)); !ok {
		t.Fatalf("after the global retry: refused (retry %v)", wait)
	}
}

func TestRegistrationsIPv6ByPrefix(t *testing.T) {
	r := NewRegistrations(1, 1, 0, 0)
	if ok, _ := r.Allow(netip.MustParseAddr("2001:db8:1:2::1"), epoch); !ok {
		t.Fatal("first: refused")
	}
	if ok, _ := r.Allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), epoch); ok {
		t.Error("another address of the same /64: allowed, want refused")
	}
	if ok, _ := r.Allow(netip.MustParseAddr("2001:db8:1:3::1"), epoch); !ok {
		t.Error("another /64: refused, want allowed")
	}
	if ok, _ := r.Allow(netip.MustParseAddr("::ffff:192.0.2.1"), epoch); !ok {
		t.Error("a mapped IPv4 address: refused, want allowed")
	}
	if ok, _ := r.Allow(netip.MustParseAddr("192.0.2.1"), epoch); ok {
		t.Error("the same IPv4 address unmapped: allowed, want refused")
	}
}

func TestRegistrationsUnlimited(t *testing.T) {
	r := NewRegistrations(0, 5, 0, 5)
	for range 20_000 {
		if ok, _ := r.Allow(netip.MustParseAddr("192.0.2.1"), epoch); !ok {
			t.Fatal("unlimited: refused")
		}
	}
	if n := r.Addresses(); n != 0 {
		t.Errorf("unlimited remembers %d addresses, want 0", n)
	}
}

// A flood of fresh addresses never grows the table past its bound.
func TestRegistrationsBoundedMemory(t *testing.T) {
	r := NewRegistrations(1, 1, 0, 0)
	for i := range 3 * maxLabels {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.Allow(a, epoch)
	}
	if n := r.Addresses(); n > maxLabels {
		t.Errorf("remembers %d addresses, want at most %d", n, maxLabels)
	}
}
