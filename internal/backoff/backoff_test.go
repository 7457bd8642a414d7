package backoff

import (
	"math"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := Policy{Base: 2 * time.Second, Max: 5 * time.Minute}
	tests := []struct {
		n      int
		lo, hi time.Duration
	}{
		{0, time.Second, 2 * time.Second},
		{1, time.Second, 2 * time.Second},
		{2, 2 * time.Second, 4 * time.Second},
		{5, 16 * time.Second, 32 * time.Second},
		{20, 150 * time.Second, 5 * time.Minute},
		{math.MaxInt, 150 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		for range 200 {
			if got := p.Delay(tt.n); got < tt.lo || got > tt.hi {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tt.n, got, tt.lo, tt.hi)
			}
		}
	}
	if got := (Policy{Base: time.Hour, Max: 100 * time.Hour}).Delay(3); got > MaxWait || got < MaxWait/2 {
		t.Errorf("a cap above MaxWait gave %s", got)
	}
	if got := (Policy{}).Delay(3); got != 0 {
		t.Errorf("zero policy gave %s", got)
	}
}

func TestClamp(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]time.Duration{
		-time.Second:              0,
		math.MinInt64:             0,
		time.Second:               time.Second,
		math.MaxInt64:             MaxWait,
		MaxWait + time.Nanosecond: MaxWait,
	} {
		if got := Clamp(in); got != want {
			t.Errorf("Clamp(%d) = %s, want %s", in, got, want)
		}
	}
}
