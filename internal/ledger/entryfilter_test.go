package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func testEntry(i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// scanOf returns a scan over entries [from, to).
func scanOf(from, to int) func(context.Context, func([32]byte)) error {
	return func(_ context.Context, fn func([32]byte)) error {
		for i := from; i < to; i++ {
			fn(testEntry(i))
		}
		return nil
	}
}

func TestEntryFilterNoFalseNegatives(t *testing.T) {
	f := newEntryFilter()
	if !f.mayContain(testEntry(1)) {
		t.Fatal("an unbuilt filter said absent")
	}
	const n = 100_000
	if err := f.build(context.Background(), n, scanOf(0, n)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !f.mayContain(testEntry(i)) {
			t.Fatalf("entry %d scanned but reported absent", i)
		}
	}
	// Entries never added: about 1% may be reported present at capacity,
	// far fewer here (the filter is sized for twice the entries).
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.mayContain(testEntry(i)) {
			fp++
		}
	}
	if fp > n/100 {
		t.Fatalf("%d false positives in %d absent entries", fp, n)
	}
}

// Entries committed while a build scans are added to it, so the built
// filter has them although its scan did not.
func TestEntryFilterBuildTakesConcurrentAdds(t *testing.T) {
	f := newEntryFilter()
	const n = 50_000
	scanning := make(chan struct{})
	release := make(chan struct{})
	scan := func(ctx context.Context, fn func([32]byte)) error {
		close(scanning)
		<-release
		return scanOf(0, n)(ctx, fn)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.build(context.Background(), n, scan); err != nil {
			t.Error(err)
		}
	}()
	<-scanning
	for i := n; i < 2*n; i++ {
		f.added(testEntry(i))
	}
	close(release)
	wg.Wait()
	for i := range 2 * n {
		if !f.mayContain(testEntry(i)) {
			t.Fatalf("entry %d reported absent", i)
		}
	}
}

// A reset during a build (the store was replaced) discards that build:
// it scanned the old store.
func TestEntryFilterResetDiscardsBuild(t *testing.T) {
	f := newEntryFilter()
	<-f.wanted
	scanning, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- f.build(context.Background(), 10, func(ctx context.Context, fn func([32]byte)) error {
			close(scanning)
			<-release
			return scanOf(0, 10)(ctx, fn)
		})
	}()
	<-scanning
	f.reset()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.current.Load() != nil {
		t.Fatal("a build begun before reset was installed")
	}
	select {
	case <-f.wanted:
	default:
		t.Fatal("reset did not ask for a new build")
	}
	if !f.mayContain(testEntry(12345)) {
		t.Fatal("an unbuilt filter said absent")
	}
}

func TestEntryFilterGrowsAndSurvivesFailedBuild(t *testing.T) {
	f := newEntryFilter()
	f.minCapacity = 4096
	<-f.wanted
	if err := f.build(context.Background(), 0, scanOf(0, 0)); err != nil {
		t.Fatal(err)
	}
	capacity := f.current.Load().capacity
	for i := range int(capacity) + 1 {
		f.added(testEntry(i))
	}
	select {
	case <-f.wanted:
	default:
		t.Fatal("no build asked for past capacity")
	}
	boom := errors.New("disk on fire")
	if err := f.build(context.Background(), capacity+1, func(context.Context, func([32]byte)) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("build error %v", err)
	}
	old := f.current.Load()
	if old == nil || old.capacity != capacity || !f.mayContain(testEntry(7)) {
		t.Fatal("a failed build replaced the filter in use")
	}
	if err := f.build(context.Background(), capacity+1, scanOf(0, int(capacity)+1)); err != nil {
		t.Fatal(err)
	}
	if got := f.current.Load().capacity; got <= capacity {
		t.Fatalf("capacity %d after growth, was %d", got, capacity)
	}
	for i := range int(capacity) + 1 {
		if !f.mayContain(testEntry(i)) {
			t.Fatalf("entry %d lost in growth", i)
		}
	}
}

// TestEntryFilterUnderConcurrentCommits builds filters again and again
// while entries are committed and added, as apply and maintainFilter run:
// after every build, each entry whose add has returned is reported
// present. The store is a slice; a scan reads a snapshot of it taken when
// the scan starts, as a Pebble iterator does.
func TestEntryFilterUnderConcurrentCommits(t *testing.T) {
	f := newEntryFilter()
	f.minCapacity = 1 << 16
	var (
		mu        sync.Mutex
		store     [][32]byte
		doneAdds  atomic.Int64 // entries 0..doneAdds-1 have been added
		stop      = make(chan struct{})
		committed sync.WaitGroup
	)
	const n = 20000
	committed.Add(1)
	go func() {
		defer committed.Done()
		for i := range n {
			e := testEntry(i)
			mu.Lock()
			store = append(store, e) // the commit
			mu.Unlock()
			f.added(e)
			doneAdds.Store(int64(i + 1))
		}
		close(stop)
	}()
	scan := func(_ context.Context, fn func([32]byte)) error {
		mu.Lock()
		snap := slices.Clone(store)
		mu.Unlock()
		for _, e := range snap {
			fn(e)
		}
		return nil
	}
	builds := 0
	for done := false; !done; builds++ {
		select {
		case <-stop:
			done = true
		default:
		}
		if builds%3 == 0 {
			f.reset()
		}
		<-f.wanted
		f.want()
		upTo := doneAdds.Load()
		if err := f.build(context.Background(), uint64(upTo), scan); err != nil {
			t.Fatal(err)
		}
		if f.current.Load() == nil {
			continue
		}
		for i := range upTo {
			if !f.mayContain(testEntry(int(i))) {
				t.Fatalf("after build %d, entry %d (added before it began) is reported absent", builds, i)
			}
		}
	}
	committed.Wait()
	for i := range n {
		if !f.mayContain(testEntry(i)) {
			t.Fatalf("entry %d reported absent at the end", i)
		}
	}
	t.Logf("%d builds while %d entries were committed", builds, n)
}
