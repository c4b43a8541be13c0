//go:build linux

package stagetime

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

const threadClock = true

func lockThread()   { runtime.LockOSThread() }
func unlockThread() { runtime.UnlockOSThread() }

// threadNow is the calling thread's CPU time, or -1 if it cannot be read
// (not on Linux ≥ 2.6.12; Stop then counts the run as 0, not a wrong value).
func threadNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return -1
	}
	return time.Duration(ts.Nano())
}
