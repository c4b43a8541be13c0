package policy

import (
	"context"
	"runtime"
)

// pool keeps at most n values that are expensive to build (runtimes), each
// used by one call at a time. Callers beyond n wait, bounded by their
// context, so building happens at most n times while values keep coming
// back.
type pool[T any] struct {
	idle chan T
	// slots holds a token for every value built and not dropped.
	slots chan struct{}
}

func newPool[T any](n int) *pool[T] {
	return &pool[T]{idle: make(chan T, n), slots: make(chan struct{}, n)}
}

// poolSize is how many runtimes a Program or Modules has at most. With
// only 2×GOMAXPROCS, a goroutine preempted while holding a runtime made
// hundreds of concurrent registrations queue behind it (+30 ms p50 at
// 5k/s); 8×GOMAXPROCS keeps that queue short at a few MiB of memory.
func poolSize() int { return 8 * runtime.GOMAXPROCS(0) }

// get returns an idle value that fits (one that does not is dropped and
// rebuilt in its slot), builds one with build if fewer than n exist, or
// waits for one to come back. waited makes the error for a ctx that ended
// first.
func (p *pool[T]) get(ctx context.Context, fits func(T) bool, build func() (T, error), waited func(error) error) (T, error) {
	select {
	case v := <-p.idle:
		if fits(v) {
			return v, nil
		}
		return p.rebuild(build)
	default:
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case v := <-p.idle:
		if fits(v) {
			return v, nil
		}
		return p.rebuild(build)
	case p.slots <- struct{}{}:
		return p.rebuild(build)
	case <-done:
		var zero T
		return zero, waited(ctx.Err())
	}
}

// rebuild builds a value in a slot already taken, freeing it on failure.
func (p *pool[T]) rebuild(build func() (T, error)) (T, error) {
	v, err := build()
	if err != nil {
		<-p.slots
	}
	return v, err
}

// add takes a slot for a value built outside get; it must be free.
func (p *pool[T]) add(v T) {
	p.slots <- struct{}{}
	p.idle <- v
}

// put makes v idle again.
func (p *pool[T]) put(v T) {
	p.idle <- v // never blocks: a slot was taken for every value
}

// drop forgets a value taken by get and frees its slot.
func (p *pool[T]) drop() { <-p.slots }
