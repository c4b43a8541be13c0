package policy

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/sobek"
)

// watchdogTick is how often running calls are checked against their
// deadline, context and memory bound. It is the precision of Timeout.
const watchdogTick = time.Millisecond

// heapMetric counts bytes in heap objects, live or not yet swept, for the
// whole process. runtime/metrics reads it without stopping the world, unlike
// runtime.ReadMemStats.
const heapMetric = "/memory/classes/heap/objects:bytes"

func heapBytes() int64 {
	s := [1]metrics.Sample{{Name: heapMetric}}
	metrics.Read(s[:])
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// watch is one call (or module initialisation) under supervision. A
// pooled instance keeps one and reuses it for each of its calls, so
// supervising a call allocates nothing.
type watch struct {
	rt        *sobek.Runtime
	ctx       context.Context // nil: no context
	timeout   time.Duration
	heapLimit int64
	start     time.Time // when the call began
	tid       int       // the thread the call is pinned to; 0 if none

	// Guarded by watchdog.mu. The call itself reads neither the heap
	// metric nor a CPU clock (both cost a syscall or a process-wide lock
	// per call): the watchdog takes the baselines the first time it sees
	// the call, within a tick of start.
	seen     bool
	cpuStart int64 // the thread's CPU time when first seen
	cpuOK    bool  // the thread's CPU clock is readable: the limit is CPU time
	heapBase int64 // heapBytes when first seen
	fired    error // the limit that interrupted rt, if any
	gcEpoch  uint64
	overSoft bool
}

// watchdog is the one goroutine that supervises every running call: a
// ticker per call would cost more than the calls themselves. It runs only
// while there are calls to watch. It is process-wide because what it
// measures (the Go heap) is.
type watchdog struct {
	mu      sync.Mutex
	calls   map[*watch]struct{}
	running bool
}

var wd = &watchdog{calls: make(map[*watch]struct{})}

// gcCount increases each time a collection requested by the watchdog
// finishes; gcBusy makes sure only one is in flight.
var (
	gcCount atomic.Uint64
	gcBusy  atomic.Bool
)

// wallFactor bounds a call's wall-clock time when its CPU time is measured.
const wallFactor = 20

// startWatch starts supervising a call made by the calling goroutine on
// rt, with w as its record (w must not be under supervision). It pins the
// goroutine to its thread; the caller must call wd.stop(w) itself when the
// call ends, which unpins it.
func (p *Program) startWatch(w *watch, ctx context.Context, rt *sobek.Runtime) {
	*w = watch{
		rt:        rt,
		ctx:       ctx,
		timeout:   p.limits.Timeout,
		heapLimit: int64(min(p.limits.MaxMemoryBytes, 1<<62)),
		start:     time.Now(),
		tid:       pinThread(),
	}
	wd.start(w)
}

func (d *watchdog) start(w *watch) {
	d.mu.Lock()
	d.calls[w] = struct{}{}
	if !d.running {
		d.running = true
		go d.loop()
	}
	d.mu.Unlock()
}

// stop ends supervision and returns the limit that fired, if any. After
// stop returns, the watchdog never touches w or w.rt again; if fired is
// non-nil the runtime may carry a pending interrupt and must be discarded.
func (d *watchdog) stop(w *watch) error {
	d.mu.Lock()
	delete(d.calls, w)
	fired := w.fired
	d.mu.Unlock()
	unpinThread()
	return fired
}

func (d *watchdog) loop() {
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	for range t.C {
		d.mu.Lock()
		if len(d.calls) == 0 {
			d.running = false
			d.mu.Unlock()
			return
		}
		now := time.Now()
		heap := heapBytes()
		for w := range d.calls {
			if w.fired != nil {
				continue
			}
			if err := d.check(w, now, heap); err != nil {
				w.fired = err
				w.rt.Interrupt(err)
			}
		}
		d.mu.Unlock()
	}
}

// check returns the limit w has exceeded, if any. The memory bound is soft
// at heapLimit and hard at twice that: past heapLimit the watchdog asks for
// a garbage collection (so garbage does not count against the call) and
// interrupts only if the heap is still over after it; past 2×heapLimit it
// interrupts at once.
//
// The first time it sees a call, check takes its baselines: the heap and
// the pinned thread's CPU time now. The call is charged from then on, not
// for what it did in the (at most one tick) before. The wall-clock limit
// runs from the call's start: Timeout without a CPU clock, wallFactor ×
// Timeout with one, as a backstop for a call starved of CPU.
func (d *watchdog) check(w *watch, now time.Time, heap int64) error {
	if !w.seen {
		w.seen = true
		w.heapBase = heap
		w.cpuStart, w.cpuOK = threadCPUTime(w.tid)
	}
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return fmt.Errorf("%w: %v", ErrTimeout, err)
		}
	}
	wall := w.timeout
	if w.cpuOK {
		wall *= wallFactor
	}
	if now.Sub(w.start) > wall {
		return ErrTimeout
	}
	if w.cpuOK {
		if t, ok := threadCPUTime(w.tid); ok && time.Duration(t-w.cpuStart) > w.timeout {
			return ErrTimeout
		}
	}
	grown := heap - w.heapBase
	switch {
	case grown > 2*w.heapLimit:
		return ErrMemory
	case grown > w.heapLimit:
		if !w.overSoft {
			w.overSoft = true
			w.gcEpoch = gcCount.Load()
			if gcBusy.CompareAndSwap(false, true) {
				go func() {
					runtime.GC()
					gcCount.Add(1)
					gcBusy.Store(false)
				}()
			}
		} else if gcCount.Load() > w.gcEpoch {
			return ErrMemory
		}
	default:
		w.overSoft = false
	}
	return nil
}
