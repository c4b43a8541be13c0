package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/charterlog/charter/log"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/mod/sumdb/tlog"
)

// history is a ledger of n transactions as the ledger package writes it:
// records (every third one a checkpoint), their stored hashes, and the
// checkpoints' and registrations' index items.
type history struct {
	recs   [][]byte
	recOf  []*log.Record
	hashes map[int64]tlog.Hash
}

func newHistory(t testing.TB, n int, salt string) *history { return newHistoryPad(t, n, salt, 0) }

// newHistoryPad is newHistory with statements of pad bytes more.
func newHistoryPad(t testing.TB, n int, salt string, pad int) *history {
	t.Helper()
	h := &history{hashes: map[int64]tlog.Hash{}}
	read := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = h.hashes[x]
		}
		return out, nil
	})
	for i := 0; i < n; i++ {
		seqno := uint64(i + 1)
		body := []byte(fmt.Sprintf("%s statement %d%s", salt, seqno, bytes.Repeat([]byte{'.'}, pad)))
		rec := &log.Record{Type: log.TxRegistration, View: 2, Seqno: seqno, Entry: sha256.Sum256(body), Body: body}
		if seqno%3 == 0 {
			// A checkpoint signs a tree smaller than its own seqno, as in
			// the ledger: the one at base+2 signs a tree within the base.
			cp, err := log.MarshalCheckpoint(&log.Checkpoint{TreeSize: seqno - 2})
			if err != nil {
				t.Fatal(err)
			}
			rec.Type, rec.Body = log.TxCheckpoint, cp
			rec.Entry = log.ComputeEntry(log.TxCheckpoint, 2, seqno, cp)
		}
		enc, err := log.MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.RecordHash(rec.Entry[:]), read)
		if err != nil {
			t.Fatal(err)
		}
		for j, x := range hs {
			h.hashes[tlog.StoredHashIndex(0, int64(i))+int64(j)] = x
		}
		h.recs = append(h.recs, enc)
		h.recOf = append(h.recOf, rec)
	}
	return h
}

// write stores the first n transactions of h, with state of that moment:
// the ledger state, a key-value map and the applied position.
func (h *history) write(t testing.TB, s *Store, n int, applied uint64) {
	t.Helper()
	b := s.NewBatch()
	for i := 0; i < n; i++ {
		rec := h.recOf[i]
		b.PutRecord(rec.Seqno, h.recs[i])
		if rec.Type == log.TxRegistration {
			b.PutEntry(rec.Entry, rec.View, rec.Seqno)
		}
		if rec.Type == log.TxCheckpoint {
			b.PutCheckpoint(rec.Seqno-2, rec.Seqno)
		}
	}
	for x := int64(0); x < tlog.StoredHashCount(int64(n)); x++ {
		b.PutHash(x, h.hashes[x])
	}
	b.PutLedgerState([]byte(fmt.Sprintf("state at %d", n)))
	b.PutKV("public:test", []byte("k"), []byte(fmt.Sprintf("v at %d", n)))
	b.PutKV("public:test", []byte(fmt.Sprintf("only at %d", n)), []byte("x"))
	b.SetApplied(applied, 3)
	rl, err := s.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.SetConfState(b, &pb.ConfState{Voters: []uint64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// state is every ledger and key-value item of s, in key order.
func state(t *testing.T, s *Store) [][2]string {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{famLedger}, UpperBound: []byte{famKV + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2]string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2]string{string(it.Key()), string(it.Value())})
	}
	return out
}

func sameState(t *testing.T, got, want *Store) {
	t.Helper()
	g, w := state(t, got), state(t, want)
	if len(g) != len(w) {
		t.Fatalf("%d items, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("item %d: key %x = %x, want key %x = %x", i, g[i][0], g[i][1], w[i][0], w[i][1])
		}
	}
}

func openImage(t testing.TB, s *Store, follower Base) (*pb.SnapshotMetadata, Base, []byte) {
	t.Helper()
	meta, base, r, err := s.OpenSnapshot(follower)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return meta, base, buf.Bytes()
}

// A follower that holds a prefix of the leader's ledger is sent only what
// it lacks, and ends with exactly the leader's state.
func TestDeltaSnapshot(t *testing.T) {
	h := newHistory(t, 600, "main")
	leader, follower := emptyStore(t), emptyStore(t)
	h.write(t, leader, 600, 900)
	h.write(t, follower, 400, 610)

	base, err := follower.LedgerBase()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tlog.TreeHash(400, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = h.hashes[x]
		}
		return out, nil
	}))
	if base.Size != 400 || base.Root != want {
		t.Fatalf("follower's base %d %x, want 400 %x", base.Size, base.Root, want)
	}
	enc, _ := base.MarshalBinary()
	var back Base
	if err := back.UnmarshalBinary(enc); err != nil || back != base {
		t.Fatalf("base round trip: %+v, %v", back, err)
	}

	_, _, full := openImage(t, leader, Base{})
	meta, used, delta := openImage(t, leader, base)
	if used != base {
		t.Fatalf("leader used base %+v, want the follower's %+v", used, base)
	}
	// 200 of 600 transactions, plus the state: about a third.
	if len(delta)*2 > len(full) {
		t.Fatalf("delta image %d bytes, whole image %d", len(delta), len(full))
	}
	t.Logf("whole image %d bytes, delta for 200 of 600 transactions %d bytes", len(full), len(delta))

	path, err := follower.StageSnapshot(t.TempDir(), bytes.NewReader(delta))
	if err != nil {
		t.Fatal(err)
	}
	rl, err := follower.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.InstallSnapshot(path, meta); err != nil {
		t.Fatal(err)
	}
	sameState(t, follower, leader)
	if idx, _, _ := follower.AppliedPosition(); idx != 900 {
		t.Fatalf("applied %d, want 900", idx)
	}
	if got, _ := follower.LedgerBase(); got.Size != 600 {
		t.Fatalf("follower's ledger size %d after install, want 600", got.Size)
	}
}

// A delta is never installed over a ledger that does not hold its base:
// a shorter one, a different one (a fork), or none.
func TestDeltaSnapshotRefusedWithoutBase(t *testing.T) {
	h := newHistory(t, 300, "main")
	leader, follower := emptyStore(t), emptyStore(t)
	h.write(t, leader, 300, 500)
	h.write(t, follower, 200, 300)
	base, err := follower.LedgerBase()
	if err != nil {
		t.Fatal(err)
	}
	_, _, delta := openImage(t, leader, base)

	shorter, forked := emptyStore(t), emptyStore(t)
	h.write(t, shorter, 150, 200)
	newHistory(t, 300, "fork").write(t, forked, 250, 400)
	for name, s := range map[string]*Store{"shorter": shorter, "forked": forked, "empty": emptyStore(t)} {
		if _, err := s.StageSnapshot(t.TempDir(), bytes.NewReader(delta)); !errors.Is(err, ErrSnapshotBase) {
			t.Errorf("%s: staging a delta from 200: %v, want ErrSnapshotBase", name, err)
		}
	}

	// A leader that does not hold the base a follower claims sends the
	// whole image.
	forkBase, _ := forked.LedgerBase()
	if _, used, _ := openImage(t, leader, forkBase); used != (Base{}) {
		t.Fatalf("leader used a base it does not hold: %+v", used)
	}
	if _, used, _ := openImage(t, leader, Base{Size: 301, Root: base.Root}); used != (Base{}) {
		t.Fatalf("leader used a base beyond its ledger: %+v", used)
	}
}

// A delta install interrupted after its marker is completed by Open, and
// keeps the prefix it was relative to.
func TestInterruptedDeltaInstallCompletes(t *testing.T) {
	h := newHistory(t, 300, "main")
	leader := emptyStore(t)
	h.write(t, leader, 300, 500)
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.write(t, s, 100, 150)
	base, _ := s.LedgerBase()
	meta, _, delta := openImage(t, leader, base)
	path, err := s.StageSnapshot(t.TempDir(), bytes.NewReader(delta))
	if err != nil {
		t.Fatal(err)
	}
	marker, err := installMarker(path, meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(keyInstalling, marker, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.wipeState(false); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.PutRecord(101, h.recs[100])
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sameState(t, s, leader)
	if v, _ := s.Get(keyApplied); binary.BigEndian.Uint64(v) != 500 {
		t.Fatalf("applied %x, want 500", v)
	}
}
