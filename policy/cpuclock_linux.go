package policy

import (
	"runtime"
	"syscall"
	"unsafe"
)

// threadCPUClock pins the calling goroutine to its OS thread and returns a
// reader of that thread's CPU time. While pinned, the thread runs only this
// goroutine, so its CPU time is the call's: a policy's time limit then
// counts the CPU it used, not time it spent waiting for a CPU on a loaded
// machine. release unpins.
//
// Linux's per-thread CPU clock id (include/linux/posix-timers.h):
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) = (^tid << 3) | 4 | 2.
func threadCPUClock() (read func() (int64, bool), release func()) {
	runtime.LockOSThread()
	clock := (^int64(syscall.Gettid()) << 3) | 6
	read = func() (int64, bool) {
		var ts syscall.Timespec
		_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clock), uintptr(unsafe.Pointer(&ts)), 0)
		if errno != 0 {
			return 0, false
		}
		return ts.Nano(), true
	}
	return read, runtime.UnlockOSThread
}
