//go:build !linux

package policy

// There is no per-thread CPU clock here: the time limit falls back to
// wall-clock time.

func pinThread() (tid int) { return 0 }

func unpinThread() {}

func threadCPUTime(tid int) (int64, bool) { return 0, false }
