package limiter

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestCheckRate(t *testing.T) {
	tests := []struct {
		perSecond float64
		wantErr   bool
	}{
		{0, false},
		{0.001, false},
		{10, false},
		{math.Inf(1), false},
		{-1, true},
		{math.Inf(-1), true},
		{math.NaN(), true},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			err := CheckRate(tt.perSecond)
			if got := errors.Is(err, ErrInvalidRate); got != tt.wantErr {
				t.Errorf("CheckRate(%v) = %v, want ErrInvalidRate %v", tt.perSecond, err, tt.wantErr)
			}
		})
	}
}

func TestNewMessagesLimitAndBurst(t *testing.T) {
	tests := []struct {
		name      string
		perSecond float64
		wantLimit rate.Limit
		wantBurst int
	}{
		{"zero is unlimited", 0, rate.Inf, 1},
		{"infinity is unlimited", math.Inf(1), rate.Inf, 1},
		{"tiny rate keeps a burst of one", 0.001, 0.001, 1},
		{"half a message a second", 0.5, 0.5, 1},
		{"two seconds' worth", 10, 10, 20},
		{"fractional rounds up", 1.2, 1.2, 3},
		{"burst capped", 1e9, 1e9, maxBurst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := NewMessages(tt.perSecond)
			if got := lim.Limit(); got != tt.wantLimit {
				t.Errorf("Limit() = %v, want %v", got, tt.wantLimit)
			}
			if got := lim.Burst(); got != tt.wantBurst {
				t.Errorf("Burst() = %d, want %d", got, tt.wantBurst)
			}
		})
	}
}

func TestNewMessagesUnlimited(t *testing.T) {
	lim := NewMessages(0)
	now := time.Now()
	for i := range 100_000 {
		if !lim.AllowN(now, 1) {
			t.Fatalf("message %d refused at one instant: got false, want true", i)
		}
	}
	for range 1000 {
		if err := lim.Wait(context.Background()); err != nil {
			t.Fatalf("Wait on unlimited limiter: got %v, want nil", err)
		}
	}
}

func TestNewMessagesThrottles(t *testing.T) {
	lim := NewMessages(10)
	now := time.Now()
	allowed := 0
	for range 100 {
		if lim.AllowN(now, 1) {
			allowed++
		}
	}
	if allowed != 20 {
		t.Errorf("messages allowed at one instant: got %d, want burst 20", allowed)
	}
	later := now.Add(500 * time.Millisecond)
	if got := lim.TokensAt(later); math.Abs(got-5) > 1e-9 {
		t.Errorf("tokens after 500ms: got %v, want 5", got)
	}
	// The bucket is empty and the next token is 100ms away, so Wait with a
	// shorter deadline fails at once (or finds the deadline already passed).
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := lim.Wait(ctx); err == nil {
		t.Error("Wait on drained limiter with 1ms deadline: got nil, want error")
	}
}

func TestConstructorsPanicOnInvalidRate(t *testing.T) {
	ctors := map[string]func(float64){
		"NewMessages": func(r float64) { NewMessages(r) },
		"NewTunnels":  func(r float64) { NewTunnels(r) },
	}
	for name, ctor := range ctors {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(-1) did not panic, want panic", name)
				}
			}()
			ctor(-1)
		})
	}
}
