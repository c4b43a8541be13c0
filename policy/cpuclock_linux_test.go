package policy

import (
	"testing"
)

// The watchdog reads a pinned call's CPU clock from its own thread: that
// must work, and the clock must advance while the call runs.
func TestThreadCPUTimeFromAnotherThread(t *testing.T) {
	tids := make(chan int)
	done := make(chan struct{})
	go func() {
		tid := pinThread()
		defer unpinThread()
		tids <- tid
		x := 0
		for {
			select {
			case <-done:
				return
			default:
				for i := range 1000 {
					x += i
				}
				_ = x
			}
		}
	}()
	tid := <-tids
	defer close(done)
	if tid == 0 {
		t.Fatal("pinThread returned thread id 0")
	}
	first, ok := threadCPUTime(tid)
	if !ok {
		t.Fatal("threadCPUTime of another thread of this process failed")
	}
	for {
		now, ok := threadCPUTime(tid)
		if !ok {
			t.Fatal("threadCPUTime failed on a second read")
		}
		if now > first {
			return
		}
	}
}
