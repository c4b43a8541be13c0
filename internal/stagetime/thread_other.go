//go:build !linux

package stagetime

import "time"

// Without a thread CPU clock, ThreadCPU stages are Wall stages (New).
const threadClock = false

func lockThread()              {}
func unlockThread()            {}
func threadNow() time.Duration { return -1 }
