package ledger_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgertest"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// node is a running one-node ledger, under the short names the tests use.
type node struct {
	*ledgertest.Node
	st *store.Store
	l  *ledger.Ledger
	r  *replication.Node
}

func startNode(t testing.TB, dir string) *node {
	t.Helper()
	n := ledgertest.Start(t, dir, ledger.Config{CheckpointInterval: 10 * time.Millisecond})
	return &node{Node: n, st: n.Store, l: n.Ledger, r: n.Raft}
}

func (n *node) stop(t testing.TB) { n.Stop(t) }

func entryFor(i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func TestRegisterCheckpointProveRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const N = 500
	ids := make([]log.TxID, N)
	var wg sync.WaitGroup
	errs := make(chan error, N)
	for i := 0; i < N; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id, err := n.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = id
			if err := n.l.WaitCovered(ctx, id.Seqno); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, id := range ids {
		if seen[id.Seqno] {
			t.Fatalf("seqno %d assigned twice", id.Seqno)
		}
		seen[id.Seqno] = true
		checkInclusion(t, n.l, id.Seqno, entryFor(i))
		checkFirstCovering(t, n, id.Seqno)
	}
	// Duplicates return the existing transaction without a new one
	// (checkpoints may land meanwhile).
	content := n.l.State().LastContentSeqno
	again, err := n.l.Register(ctx, entryFor(7), []byte{7}, [32]byte{})
	if err != nil || again != ids[7] {
		t.Fatalf("duplicate: got %v, %v; want %v", again, err, ids[7])
	}
	if got := n.l.State().LastContentSeqno; got != content {
		t.Fatalf("a duplicate added transaction %d", got)
	}
	st := n.l.State()
	n.stop(t)

	n = startNode(t, dir)
	defer n.stop(t)
	if got := n.l.State(); got.Size < st.Size || got.LastCheckpointSize < st.LastCheckpointSize {
		t.Fatalf("after restart state %+v, before %+v", got, st)
	}
	for i, id := range ids {
		checkInclusion(t, n.l, id.Seqno, entryFor(i))
		checkFirstCovering(t, n, id.Seqno)
	}
	// The idle ledger stays still: no checkpoint of checkpoints.
	before := n.l.State()
	time.Sleep(100 * time.Millisecond)
	if after := n.l.State(); after != before {
		t.Fatalf("idle ledger changed: %+v -> %+v", before, after)
	}
}

func checkInclusion(t *testing.T, l *ledger.Ledger, seqno uint64, entry [32]byte) {
	t.Helper()
	inc, err := l.Inclusion(seqno)
	if err != nil {
		t.Fatalf("inclusion %d: %v", seqno, err)
	}
	if inc.Record.Entry != entry {
		t.Fatalf("seqno %d holds entry %x, want %x", seqno, inc.Record.Entry, entry)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(entry[:])
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, inc.LeafIndex, inc.Checkpoint.TreeSize, leaf, inc.Path, inc.Checkpoint.Root[:]); err != nil {
		t.Fatalf("inclusion proof for seqno %d: %v", seqno, err)
	}
}

// checkFirstCovering checks that a receipt for seqno is made against the
// first checkpoint covering it, as the store's index says, so that every
// fetch of a receipt gives the same one (whether the ledger answered from
// memory or from the store).
func checkFirstCovering(t *testing.T, n *node, seqno uint64) {
	t.Helper()
	inc, err := n.l.Inclusion(seqno)
	if err != nil {
		t.Fatalf("inclusion %d: %v", seqno, err)
	}
	size, cpSeq, err := n.st.CheckpointCovering(seqno)
	if err != nil {
		t.Fatalf("store: checkpoint covering %d: %v", seqno, err)
	}
	if inc.Checkpoint.TreeSize != size {
		t.Fatalf("seqno %d proved against the checkpoint of size %d, but the first covering it is %d (seqno %d)", seqno, inc.Checkpoint.TreeSize, size, cpSeq)
	}
}

// A checkpoint whose root is not this tree's at its size, or that is not
// newer than the last one, is skipped identically on every node: no two
// roots are ever signed for one size, whatever a deposed leader proposes.
func TestForeignCheckpointsAreSkipped(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := n.l.Register(ctx, entryFor(1), []byte("a"), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.l.WaitCovered(ctx, id.Seqno); err != nil {
		t.Fatal(err)
	}
	before := n.l.State()
	propose := func(cp *log.Checkpoint) {
		body, err := log.MarshalCheckpoint(cp)
		if err != nil {
			t.Fatal(err)
		}
		data, err := log.MarshalBatch(&log.Batch{Proposals: []log.Proposal{{Type: log.TxCheckpoint, Body: body}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.r.Propose(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	// Wrong root for a size that has no checkpoint yet.
	propose(&log.Checkpoint{TreeSize: before.Size, Root: [32]byte{1}})
	// A size beyond the ledger.
	propose(&log.Checkpoint{TreeSize: before.Size + 100, Root: [32]byte{2}})
	// An older size than the newest checkpoint, with the right root.
	old, err := n.l.Tree().Root(1)
	if err != nil {
		t.Fatal(err)
	}
	propose(&log.Checkpoint{TreeSize: 1, Root: old})
	// A sentinel registration after them shows they were applied (skipped).
	id2, err := n.l.Register(ctx, entryFor(2), []byte("b"), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.l.WaitCovered(ctx, id2.Seqno); err != nil {
		t.Fatal(err)
	}
	if got := id2.Seqno; got != before.Size+1 {
		t.Fatalf("sentinel at seqno %d, want %d: a foreign checkpoint took a position", got, before.Size+1)
	}
	cp, err := n.l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if root, _ := n.l.Tree().Root(int64(cp.TreeSize)); root != cp.Root {
		t.Fatalf("newest checkpoint signs %x for size %d; the tree's root is %x", cp.Root, cp.TreeSize, root)
	}
}

func TestSubmitWrites(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := &log.WriteSet{Writes: []log.Write{
		{Map: "public:test.a", Key: []byte("k1"), Value: []byte("v1")},
		{Map: "public:test.a", Key: []byte("k2"), Value: []byte("v2")},
	}, Claims: []byte("who asked")}
	id, err := n.l.SubmitWrites(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := n.l.GetKV("public:test.a", []byte("k1")); err != nil || string(v) != "v1" {
		t.Fatalf("k1 = %q, %v", v, err)
	}
	// The transaction is in the ledger, with a receipt over its entry.
	if err := n.l.WaitCovered(ctx, id.Seqno); err != nil {
		t.Fatal(err)
	}
	rec, err := n.l.Record(id.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Type != log.TxWrites || rec.Entry != log.ComputeEntry(log.TxWrites, rec.View, rec.Seqno, rec.Body) {
		t.Fatalf("record %+v", rec)
	}
	checkInclusion(t, n.l, id.Seqno, rec.Entry)

	del := &log.WriteSet{Writes: []log.Write{{Map: "public:test.a", Key: []byte("k1"), Delete: true}}}
	if _, err := n.l.SubmitWrites(ctx, del); err != nil {
		t.Fatal(err)
	}
	if _, err := n.l.GetKV("public:test.a", []byte("k1")); err != ledger.ErrNotFound {
		t.Fatalf("deleted key: %v", err)
	}
	var keys []string
	if err := n.l.ScanKV("public:test.a", func(k, v []byte) error { keys = append(keys, string(k)); return nil }); err != nil || len(keys) != 1 || keys[0] != "k2" {
		t.Fatalf("scan: %v, %v", keys, err)
	}
	content := n.l.State().LastContentSeqno // checkpoints may land meanwhile
	for name, bad := range map[string]*log.WriteSet{
		"empty":         {},
		"reserved map":  {Writes: []log.Write{{Map: "public:charter.nodes", Key: []byte("x"), Value: []byte("y")}}},
		"zero in name":  {Writes: []log.Write{{Map: "a\x00b", Key: []byte("x")}}},
		"no map name":   {Writes: []log.Write{{Key: []byte("x")}}},
		"key too large": {Writes: []log.Write{{Map: "m", Key: make([]byte, log.MaxKeyBytes+1)}}},
	} {
		if _, err := n.l.SubmitWrites(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got := n.l.State().LastContentSeqno; got != content {
		t.Fatalf("refused write sets added transaction %d", got)
	}
}

// App transactions apply only if what they read still holds: of two
// transactions that read the same balance, the second is refused with
// ErrConflict and writes nothing; one that re-reads the new balance
// applies. Identical requests are distinct transactions.
func TestSubmitAppConflicts(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const m = "private:accounts"
	read := func(v []byte, present bool) []log.Read {
		return []log.Read{{Map: m, Key: []byte("alice"), Digest: log.ValueDigest(v, present)}}
	}
	set := func(v string) []log.Write { return []log.Write{{Map: m, Key: []byte("alice"), Value: []byte(v)}} }

	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: set("100"), Reads: read(nil, false)}); err != nil {
		t.Fatal(err)
	}
	// Both read 100; the first to apply wins.
	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: set("60"), Reads: read([]byte("100"), true)}); err != nil {
		t.Fatal(err)
	}
	// Checkpoints may land meanwhile; no other transaction may.
	content := n.l.State().LastContentSeqno
	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: set("140"), Reads: read([]byte("100"), true)}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("stale read: %v, want ErrConflict", err)
	}
	if v, _ := n.l.GetKV(m, []byte("alice")); string(v) != "60" || n.l.State().LastContentSeqno != content {
		t.Fatalf("after the conflict: alice = %q, last content seqno %d → %d", v, content, n.l.State().LastContentSeqno)
	}
	// A whole-map read conflicts with any change to the map.
	var d log.MapDigester
	d.Add([]byte("alice"), []byte("60"))
	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: set("61"), Reads: []log.Read{{Map: m, Scan: true, Digest: d.Sum()}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: set("62"), Reads: []log.Read{{Map: m, Scan: true, Digest: d.Sum()}}}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("stale scan: %v, want ErrConflict", err)
	}
	if got := n.l.AppConflicts(); got != 2 {
		t.Errorf("charter_ledger_app_conflicts_total = %v after two conflicts", got)
	}
	// Two identical requests are two transactions.
	same := func() *log.AppTx {
		return &log.AppTx{Writes: []log.Write{{Map: "private:log", Key: []byte("x"), Value: []byte("y")}}}
	}
	a, err1 := n.l.SubmitApp(ctx, same())
	b, err2 := n.l.SubmitApp(ctx, same())
	if err1 != nil || err2 != nil || a == b {
		t.Fatalf("identical requests: %v %v, %v %v", a, err1, b, err2)
	}
	// Apps never write governance state.
	if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: []log.Write{{Map: "public:ccf.gov.users.certs", Key: []byte("x"), Value: []byte("y")}}}); err == nil {
		t.Fatal("an app transaction wrote a governance map")
	}
}

// TestGetKVFollowsApplies reads a key while it is written over and over:
// every read returns a value at least as new as the last applied before
// the read began (the read cache never goes back), and the last read
// agrees with the store.
func TestGetKVFollowsApplies(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const m, writes = "private:counter", 200
	key := []byte("k")
	val := func(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }
	var mu sync.Mutex
	lastApplied := uint64(0)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				floor := lastApplied
				mu.Unlock()
				v, err := n.l.GetKV(m, key)
				if errors.Is(err, ledger.ErrNotFound) {
					if floor > 0 {
						errs <- errors.New("key absent after it was written")
						return
					}
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if got := binary.BigEndian.Uint64(v); got < floor {
					errs <- errors.New("read went back to an older value")
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= writes; i++ {
		if _, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: []log.Write{{Map: m, Key: key, Value: val(i)}}}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		lastApplied = i
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := n.l.GetKV(m, key)
	fromStore, err2 := n.st.GetKV(m, key)
	if err != nil || err2 != nil || binary.BigEndian.Uint64(v) != writes || string(v) != string(fromStore) {
		t.Fatalf("final read %x (%v), store %x (%v); want %d", v, err, fromStore, err2, writes)
	}
}

// Duplicates are found once the entry filter answers the checks: it is
// built from the store's index at start (after a restart, from a scan
// alone) and takes every applied registration.
func TestDuplicatesWithEntryFilter(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	register := func(n *node, from, to int) []log.TxID {
		t.Helper()
		ids := make([]log.TxID, to-from)
		for i := from; i < to; i++ {
			id, err := n.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{})
			if err != nil {
				t.Fatal(err)
			}
			ids[i-from] = id
		}
		return ids
	}
	waitBuilt := func(n *node) {
		t.Helper()
		for !n.l.EntryFilterBuilt() {
			if ctx.Err() != nil {
				t.Fatal("entry filter never built")
			}
			time.Sleep(time.Millisecond)
		}
	}
	n := startNode(t, dir)
	waitBuilt(n)
	first := register(n, 0, 200)
	content := n.l.State().LastContentSeqno
	if again := register(n, 0, 200); !slices.Equal(again, first) {
		t.Fatal("duplicates got new transactions")
	}
	if got := n.l.State().LastContentSeqno; got != content {
		t.Fatalf("duplicates added transactions up to %d", got)
	}
	n.stop(t)

	n = startNode(t, dir)
	defer n.stop(t)
	waitBuilt(n)
	if again := register(n, 0, 200); !slices.Equal(again, first) {
		t.Fatal("after a restart, duplicates got new transactions")
	}
	if got := n.l.State().LastContentSeqno; got != content {
		t.Fatalf("after a restart, duplicates added transactions up to %d", got)
	}
	fresh := register(n, 200, 220)
	if fresh[0].Seqno <= content {
		t.Fatalf("a new entry got seqno %d", fresh[0].Seqno)
	}
}

// A snapshot install replaces the store's entries: the ledger drops its
// entry filter on Restore and builds one from the new store, so that a
// duplicate of an entry that came in the image is found (on apply, a miss
// would append it again and fork this node from the others).
func TestRestoreRebuildsEntryFilter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src := startNode(t, t.TempDir())
	ids := make([]log.TxID, 50)
	for i := range ids {
		id, err := src.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	meta, _, image, err := src.st.OpenSnapshot(store.Base{})
	if err != nil {
		t.Fatal(err)
	}
	// The destination runs the filter maintenance as a node does, on an
	// empty store, and has a filter built (of nothing) before the install.
	dstDir := t.TempDir()
	st, err := store.Open(dstDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	path, err := st.StageSnapshot(store.SnapshotDir(dstDir), image)
	image.Close()
	if err != nil {
		t.Fatal(err)
	}
	src.stop(t)

	l, err := ledger.Open(st, ledger.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seqCtx, stopSeq := context.WithCancel(ctx)
	seqDone := make(chan struct{})
	go func() { defer close(seqDone); _ = l.RunSequencer(seqCtx, follower{}) }()
	defer func() { stopSeq(); <-seqDone }()
	waitFilter := func() {
		for !l.EntryFilterBuilt() {
			if ctx.Err() != nil {
				t.Fatal("entry filter never built")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFilter()
	if _, err := l.LookupEntry(entryFor(0)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("empty ledger: lookup %v", err)
	}
	rl, err := st.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.InstallSnapshot(path, meta); err != nil {
		t.Fatal(err)
	}
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	waitFilter()
	for i, want := range ids {
		if got, err := l.LookupEntry(entryFor(i)); err != nil || got != want {
			t.Fatalf("entry %d after restore: %v, %v; want %v", i, got, err, want)
		}
	}
}

// follower is a Proposer that never leads: a sequencer on it proposes
// nothing.
type follower struct{}

func (follower) Propose(context.Context, []byte) error { return errors.New("not the leader") }
func (follower) Leader() (bool, uint64)                { return false, 0 }

// ScanRecords gives the chunk files the records as the store holds them,
// whether it reads them from memory (applied since the node started), the
// store (applied before), or both across the boundary.
func TestScanRecordsMatchesTheStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	n := startNode(t, dir)
	for i := range 40 {
		if _, err := n.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{}); err != nil {
			t.Fatal(err)
		}
	}
	n.stop(t)
	// After a restart the newest records are in memory, the older ones
	// only in the store.
	n = startNode(t, dir)
	defer n.stop(t)
	for i := 40; i < 80; i++ {
		if _, err := n.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{}); err != nil {
			t.Fatal(err)
		}
	}
	size := n.l.State().Size
	for _, r := range [][2]uint64{{1, size}, {1, 10}, {size - 5, size}, {30, 60}, {size, size}} {
		var want, got [][]byte
		// raw is valid only during the call (the store's iterator reuses
		// it): keep copies.
		if err := n.st.ScanRecords(r[0], r[1], func(_ uint64, raw []byte) error { want = append(want, bytes.Clone(raw)); return nil }); err != nil {
			t.Fatal(err)
		}
		next := r[0]
		if err := n.l.ScanRecords(r[0], r[1], func(seqno uint64, raw []byte) error {
			if seqno != next {
				return fmt.Errorf("seqno %d, want %d", seqno, next)
			}
			next++
			got = append(got, bytes.Clone(raw))
			return nil
		}); err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("%v: the ledger's records differ from the store's", r)
		}
	}
	// Far beyond: a checkpoint may apply meanwhile, so not size+1.
	if err := n.l.ScanRecords(size+1000, size+1000, func(uint64, []byte) error { return nil }); err == nil {
		t.Fatal("a scan beyond the ledger succeeded")
	}
}
