package ledger

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// entryFilter is a Bloom filter over the leaf entries of every registration
// in the store, so that the duplicate checks of a new statement (one before
// sequencing, one at apply) are answered from memory: "absent" from the
// filter is certain, and only "maybe present" (a duplicate, or a false
// positive about one time in a hundred) reads the store. A Pebble lookup
// of an absent key cost about 7 µs under load, twice per registration: 8%
// of its CPU.
//
// A filter has no false negatives only if it holds every entry in the
// store. One is built by scanning the store's entry index, in the
// background (RunSequencer's maintainFilter) so that opening a large
// ledger is not delayed; until a build completes, every check goes to the
// store. Apply adds each entry it commits to the filter in use and to the
// one being built. A build takes Apply's additions before it opens its
// store snapshot, so an entry is in the snapshot or added, never neither.
// A restored snapshot image replaces the store, and so the filter: reset
// drops it and a new build starts. Growth past the capacity (where the
// false-positive rate climbs) starts a larger build.
//
// Entries are SHA-256 outputs, uniform already, so the probes are taken
// from their bytes without hashing. I wrote the filter rather than use
// bits-and-blooms/bloom because that one hashes its input again and needs
// a lock around adds and tests; here adds (apply) and tests (every
// request) run concurrently on atomic words.
type entryFilter struct {
	buildMu sync.Mutex // one build at a time
	// mu guards gen and the installing of current and building; a scan
	// runs without it.
	mu       sync.Mutex
	gen      uint64
	current  atomic.Pointer[bloom] // nil: not built; check the store
	building atomic.Pointer[bloom]
	// wanted has a token when a build is due (none yet, reset, or grown
	// past capacity).
	wanted chan struct{}
	// minCapacity is the smallest filter built (entries).
	minCapacity uint64
}

// About a 1% false-positive rate at capacity.
const (
	filterBitsPerEntry = 10
	filterProbes       = 7
	filterMinCapacity  = 1 << 20 // 1.25 MiB
)

func newEntryFilter() *entryFilter {
	f := &entryFilter{wanted: make(chan struct{}, 1), minCapacity: filterMinCapacity}
	f.want()
	return f
}

func (f *entryFilter) want() {
	select {
	case f.wanted <- struct{}{}:
	default:
	}
}

type bloom struct {
	words    []atomic.Uint64
	bits     uint64
	capacity uint64
	count    atomic.Uint64
}

func newBloom(capacity uint64) *bloom {
	words := (capacity*filterBitsPerEntry + 63) / 64
	return &bloom{words: make([]atomic.Uint64, words), bits: words * 64, capacity: capacity}
}

// position i of e, by double hashing (Kirsch–Mitzenmacher) over two
// words of the entry.
func (b *bloom) position(e *[32]byte, i uint64) uint64 {
	h1, h2 := binary.LittleEndian.Uint64(e[0:8]), binary.LittleEndian.Uint64(e[8:16])|1
	return (h1 + i*h2) % b.bits
}

func (b *bloom) add(e *[32]byte) {
	for i := range uint64(filterProbes) {
		p := b.position(e, i)
		b.words[p/64].Or(1 << (p % 64))
	}
	b.count.Add(1)
}

func (b *bloom) mayContain(e *[32]byte) bool {
	for i := range uint64(filterProbes) {
		p := b.position(e, i)
		if b.words[p/64].Load()&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// mayContain reports false only if entry is certainly not in the store.
func (f *entryFilter) mayContain(entry [32]byte) bool {
	b := f.current.Load()
	return b == nil || b.mayContain(&entry)
}

// added records an entry whose batch has committed.
func (f *entryFilter) added(entry [32]byte) {
	if b := f.building.Load(); b != nil {
		b.add(&entry)
	}
	if b := f.current.Load(); b != nil {
		b.add(&entry)
		if b.count.Load() > b.capacity {
			f.want()
		}
	}
}

// reset drops the filter: the store's entries are no longer the ones it
// holds. Checks go to the store until a new build completes.
func (f *entryFilter) reset() {
	f.mu.Lock()
	f.gen++
	f.current.Store(nil)
	f.building.Store(nil)
	f.mu.Unlock()
	f.want()
}

// build makes a filter for about entries entries (and growth) from scan,
// which calls its argument for every entry in the store, and installs it
// unless a reset came meanwhile.
func (f *entryFilter) build(ctx context.Context, entries uint64, scan func(context.Context, func([32]byte)) error) error {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	if cur := f.current.Load(); cur != nil && cur.count.Load() <= cur.capacity {
		return nil
	}
	b := newBloom(max(2*entries, f.minCapacity))
	f.mu.Lock()
	gen := f.gen
	f.building.Store(b)
	f.mu.Unlock()
	err := scan(ctx, func(e [32]byte) { b.add(&e) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return nil // reset meanwhile: wanted has a token for the next build
	}
	if err != nil {
		f.building.Store(nil)
		return err
	}
	// current before building: added loads building, then current, so
	// an entry committed after the scan's snapshot reaches b through one
	// or the other whenever its add runs. The other order leaves a moment
	// in which it would reach neither.
	f.current.Store(b)
	f.building.Store(nil)
	return nil
}

// maintainFilter builds the entry filter whenever one is due, until ctx
// ends. A failed build is tried again a minute later; checks go to the
// store meanwhile.
func (l *Ledger) maintainFilter(ctx context.Context) {
	retry := time.NewTimer(0)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.filter.wanted:
		case <-retry.C:
		}
		entries := l.State().Size // at least the registrations
		if cur := l.filter.current.Load(); cur != nil {
			entries = max(entries, cur.count.Load())
		}
		start := time.Now()
		if err := l.filter.build(ctx, entries, l.st.ScanEntries); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Error("building the entry filter failed; duplicate checks read the store", "err", err)
			retry.Reset(time.Minute)
			continue
		}
		if cur := l.filter.current.Load(); cur != nil {
			l.log.Debug("entry filter built", "entries", cur.count.Load(), "capacity", cur.capacity, "took", time.Since(start))
		}
	}
}
