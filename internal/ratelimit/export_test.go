package ratelimit

import "time"

// Leases is how many lease transactions l has run.
func Leases(l *Limiter) int64 { return l.leases.Load() }

// OnGrant has l tell f each grant's time on its block's grid (the time the
// grant was due, not when the waiter's goroutine ran again). Set it before
// l is used.
func OnGrant(l *Limiter, f func(time.Time)) { l.onGrant = f }
