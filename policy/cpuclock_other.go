//go:build !linux

package policy

// threadCPUClock has no per-thread CPU clock here: the time limit falls
// back to wall-clock time.
func threadCPUClock() (read func() (int64, bool), release func()) {
	return func() (int64, bool) { return 0, false }, func() {}
}
