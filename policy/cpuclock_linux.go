package policy

import (
	"runtime"
	"syscall"
	"unsafe"
)

// pinThread pins the calling goroutine to its OS thread and returns the
// thread's id, whose CPU clock threadCPUTime reads. While pinned, the thread
// runs only this goroutine, so its CPU time is the call's: a policy's time
// limit then counts the CPU it used, not time it spent waiting for a CPU on
// a loaded machine. unpinThread undoes it.
//
// The call itself reads no clock: the watchdog reads the pinned thread's
// clock from its own thread (Linux allows it within a thread group), the
// first time it looks at the call and at each tick after, so a call shorter
// than a tick (nearly all) costs one gettid and no clock_gettime.
func pinThread() (tid int) {
	runtime.LockOSThread()
	return syscall.Gettid()
}

func unpinThread() { runtime.UnlockOSThread() }

// threadCPUTime returns the CPU time in nanoseconds of thread tid of this
// process, false if it cannot be read.
//
// Linux's per-thread CPU clock id (include/linux/posix-timers.h):
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) = (^tid << 3) | 4 | 2.
func threadCPUTime(tid int) (int64, bool) {
	if tid == 0 {
		return 0, false
	}
	clock := (^int64(tid) << 3) | 6
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clock), uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
