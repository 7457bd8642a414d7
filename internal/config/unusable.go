package config

// UnusableError is a setting found wrong only when it is put to use: a
// certificate that does not load, a Graph URL the client refuses, a token
// cache key that does not open the stored sign-in. Like Error it is the
// operator's to fix, and the commands exit 2 on it; unlike Error, its text
// is the cause's own, which names what was wrong.
type UnusableError struct {
	Err error
}

func (e *UnusableError) Error() string { return e.Err.Error() }
func (e *UnusableError) Unwrap() error { return e.Err }

// Unusable marks err as an UnusableError.
func Unusable(err error) error { return &UnusableError{Err: err} }
