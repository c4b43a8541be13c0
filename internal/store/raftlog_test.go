package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/charterlog/charter/internal/store"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func raftLog(t *testing.T, s *store.Store) *store.RaftLog {
	t.Helper()
	l, err := s.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ent(index, term uint64) *pb.Entry {
	return &pb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Data: []byte(fmt.Sprintf("entry-%04d-t%d", index, term))}
}

func ents(lo, hi, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, ent(i, term))
	}
	return out
}

func bounds(t *testing.T, l *store.RaftLog) (first, last uint64) {
	t.Helper()
	first, err := l.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err = l.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

// checkEntries asserts Entries(lo, hi, no limit) is exactly [lo, hi) with
// the given term function.
func checkEntries(t *testing.T, l *store.RaftLog, lo, hi uint64, term func(uint64) uint64) {
	t.Helper()
	got, err := l.Entries(lo, hi, 1<<62)
	if err != nil {
		t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
	}
	if uint64(len(got)) != hi-lo {
		t.Fatalf("Entries(%d, %d) returned %d entries", lo, hi, len(got))
	}
	for k, e := range got {
		want := ent(lo+uint64(k), term(lo+uint64(k)))
		if !proto.Equal(e, want) {
			t.Fatalf("Entries(%d, %d)[%d] = %v, want %v", lo, hi, k, e, want)
		}
	}
}

func TestRaftLogFresh(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	l := raftLog(t, s)
	hs, cs, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if !raft.IsEmptyHardState(hs) {
		t.Errorf("fresh HardState = %v, want empty", hs)
	}
	if cs == nil || len(cs.GetVoters()) != 0 || len(cs.GetLearners()) != 0 {
		t.Errorf("fresh ConfState = %v, want empty and non-nil", cs)
	}
	if first, last := bounds(t, l); first != 1 || last != 0 {
		t.Errorf("fresh FirstIndex, LastIndex = %d, %d; want 1, 0", first, last)
	}
	if term, err := l.Term(0); err != nil || term != 0 {
		t.Errorf("fresh Term(0) = %d, %v; want 0, nil", term, err)
	}
	if _, err := l.Term(1); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("fresh Term(1) error = %v, want ErrUnavailable", err)
	}
	if _, err := l.Entries(1, 2, 1<<20); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("fresh Entries(1, 2) error = %v, want ErrUnavailable", err)
	}
	snap, err := l.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 0 {
		t.Errorf("fresh Snapshot = %v, %v", snap, err)
	}
	if a, err := s.Applied(); err != nil || a != 0 {
		t.Errorf("fresh Applied = %d, %v", a, err)
	}
}

func TestRaftLogContract(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			l := raftLog(t, s)
			// In four Readies, as raft hands them out.
			for _, r := range [][2]uint64{{1, 1}, {2, 40}, {41, 99}, {100, 100}} {
				if err := l.SaveRaft(nil, ents(r[0], r[1], 1), sync); err != nil {
					t.Fatal(err)
				}
			}
			if first, last := bounds(t, l); first != 1 || last != 100 {
				t.Fatalf("FirstIndex, LastIndex = %d, %d; want 1, 100", first, last)
			}
			for i := uint64(0); i <= 100; i++ {
				want := uint64(1)
				if i == 0 {
					want = 0
				}
				if term, err := l.Term(i); err != nil || term != want {
					t.Fatalf("Term(%d) = %d, %v; want %d", i, term, err, want)
				}
			}
			for _, i := range []uint64{101, 1 << 40} {
				if _, err := l.Term(i); !errors.Is(err, raft.ErrUnavailable) {
					t.Fatalf("Term(%d) error = %v, want ErrUnavailable", i, err)
				}
			}
			one := func(uint64) uint64 { return 1 }
			for _, r := range [][2]uint64{{1, 101}, {1, 2}, {50, 51}, {37, 84}, {100, 101}, {5, 5}} {
				checkEntries(t, l, r[0], r[1], one)
			}
			for _, r := range [][2]uint64{{1, 102}, {100, 102}, {101, 102}, {200, 300}} {
				if _, err := l.Entries(r[0], r[1], 1<<30); !errors.Is(err, raft.ErrUnavailable) {
					t.Fatalf("Entries(%d, %d) error = %v, want ErrUnavailable", r[0], r[1], err)
				}
			}
			// maxSize: at least one entry, however small; then it stops
			// before the range ends.
			for _, max := range []uint64{0, 1} {
				got, err := l.Entries(10, 20, max)
				if err != nil || len(got) != 1 || got[0].GetIndex() != 10 {
					t.Fatalf("Entries(10, 20, %d) = %d entries, %v; want exactly entry 10", max, len(got), err)
				}
			}
			dataLen := uint64(len(ent(10, 1).GetData()))
			got, err := l.Entries(10, 90, 3*dataLen+dataLen/2)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < 1 || len(got) > 3 {
				t.Fatalf("Entries(10, 90, room for 3.5 payloads) returned %d entries; want 1..3", len(got))
			}
			for k, e := range got {
				if e.GetIndex() != 10+uint64(k) {
					t.Fatalf("Entries(10, 90, limited)[%d] has index %d", k, e.GetIndex())
				}
			}
			// The caller owns the slice: appending to it must not touch
			// the store.
			got = append(got, ent(999, 9))
			_ = got
			checkEntries(t, l, 10, 14, one)
		})
	}
}

// TestRaftLogConflictingSuffix: a new leader's entries 50..60 of term 2
// replace 50..100 of term 1; 61..100 are gone, in memory and on disk.
func TestRaftLogConflictingSuffix(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	l := raftLog(t, s)
	if err := l.SaveRaft(nil, ents(1, 100, 1), true); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveRaft(nil, ents(50, 60, 2), true); err != nil {
		t.Fatal(err)
	}
	term := func(i uint64) uint64 {
		if i >= 50 {
			return 2
		}
		return 1
	}
	check := func(l *store.RaftLog) {
		t.Helper()
		if first, last := bounds(t, l); first != 1 || last != 60 {
			t.Fatalf("FirstIndex, LastIndex = %d, %d; want 1, 60", first, last)
		}
		checkEntries(t, l, 1, 61, term)
		for i := uint64(1); i <= 60; i++ {
			if got, err := l.Term(i); err != nil || got != term(i) {
				t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, term(i))
			}
		}
		if _, err := l.Entries(1, 62, 1<<30); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("Entries(1, 62) error = %v, want ErrUnavailable", err)
		}
		if _, err := l.Term(61); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("Term(61) error = %v, want ErrUnavailable", err)
		}
	}
	check(l)
	s.Close()
	// After a restart the removed suffix must not come back (LastIndex is
	// recomputed from the keys on disk).
	s = openStore(t, dir)
	defer s.Close()
	check(raftLog(t, s))
	// Appending after the replaced suffix continues from 61.
	l = raftLog(t, s)
	if err := l.SaveRaft(nil, ents(61, 70, 2), true); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, l, 1, 71, term)
}

func TestRaftLogPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	l := raftLog(t, s)
	hs := &pb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(2), Commit: proto.Uint64(17)}
	if err := l.SaveRaft(hs, ents(1, 20, 3), true); err != nil {
		t.Fatal(err)
	}
	// A hard state alone (no entries) is saved too; an empty one changes
	// nothing.
	hs2 := &pb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(2), Commit: proto.Uint64(20)}
	if err := l.SaveRaft(hs2, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveRaft(&pb.HardState{}, nil, true); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	if err := l.SetConfState(b, cs); err != nil {
		t.Fatal(err)
	}
	b.SetApplied(20, 1)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	defer s.Close()
	l = raftLog(t, s)
	gotHS, gotCS, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(gotHS, hs2) {
		t.Errorf("HardState after reopen = %v, want %v", gotHS, hs2)
	}
	if !proto.Equal(l.HardState(), hs2) {
		t.Errorf("HardState() after reopen = %v, want %v", l.HardState(), hs2)
	}
	if !proto.Equal(gotCS, cs) {
		t.Errorf("ConfState after reopen = %v, want %v", gotCS, cs)
	}
	if first, last := bounds(t, l); first != 1 || last != 20 {
		t.Errorf("FirstIndex, LastIndex after reopen = %d, %d; want 1, 20", first, last)
	}
	if term, err := l.Term(20); err != nil || term != 3 {
		t.Errorf("Term(20) after reopen = %d, %v", term, err)
	}
	checkEntries(t, l, 1, 21, func(uint64) uint64 { return 3 })
	if a, err := s.Applied(); err != nil || a != 20 {
		t.Errorf("Applied after reopen = %d, %v; want 20", a, err)
	}
	// InitialState hands out copies.
	gotHS.Commit = proto.Uint64(999)
	if h, _, _ := l.InitialState(); h.GetCommit() != 20 {
		t.Error("mutating InitialState's HardState changed the log's")
	}
}

func TestRaftLogCompact(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	l := raftLog(t, s)
	if err := l.SaveRaft(nil, append(ents(1, 30, 1), ents(31, 50, 2)...), true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compact(35, &pb.ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	check := func(l *store.RaftLog) {
		t.Helper()
		if first, last := bounds(t, l); first != 36 || last != 50 {
			t.Fatalf("after Compact(35): FirstIndex, LastIndex = %d, %d; want 36, 50", first, last)
		}
		if term, err := l.Term(35); err != nil || term != 2 {
			t.Fatalf("Term(35) (the snapshot's) = %d, %v; want 2", term, err)
		}
		for _, i := range []uint64{1, 34} {
			if _, err := l.Term(i); !errors.Is(err, raft.ErrCompacted) {
				t.Fatalf("Term(%d) error = %v, want ErrCompacted", i, err)
			}
		}
		for _, lo := range []uint64{1, 35} {
			if _, err := l.Entries(lo, 40, 1<<30); !errors.Is(err, raft.ErrCompacted) {
				t.Fatalf("Entries(%d, 40) error = %v, want ErrCompacted", lo, err)
			}
		}
		checkEntries(t, l, 36, 51, func(uint64) uint64 { return 2 })
		snap, err := l.Snapshot()
		if err != nil || snap.GetMetadata().GetIndex() != 35 || snap.GetMetadata().GetTerm() != 2 {
			t.Fatalf("Snapshot = %v, %v; want index 35 term 2", snap, err)
		}
	}
	check(l)
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	check(raftLog(t, s))
}

func TestRepairCommit(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	l := raftLog(t, s)
	hs := &pb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(10)}
	if err := l.SaveRaft(hs, ents(1, 30, 2), true); err != nil {
		t.Fatal(err)
	}
	// Applied at or below commit: nothing to repair.
	for _, applied := range []uint64{0, 5, 10} {
		if err := l.RepairCommit(applied); err != nil {
			t.Fatalf("RepairCommit(%d): %v", applied, err)
		}
		if c := l.HardState().GetCommit(); c != 10 {
			t.Fatalf("RepairCommit(%d) changed commit to %d", applied, c)
		}
	}
	// Applied beyond the log: the store is corrupt, and commit stays.
	if err := l.RepairCommit(31); err == nil {
		t.Fatal("RepairCommit(31) with last index 30: no error")
	}
	if c := l.HardState().GetCommit(); c != 10 {
		t.Fatalf("failed RepairCommit changed commit to %d", c)
	}
	if err := l.RepairCommit(30); err != nil {
		t.Fatalf("RepairCommit(30): %v", err)
	}
	want := &pb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(30)}
	if !proto.Equal(l.HardState(), want) {
		t.Fatalf("after RepairCommit(30): %v, want %v", l.HardState(), want)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	if got := raftLog(t, s).HardState(); !proto.Equal(got, want) {
		t.Fatalf("repaired HardState after reopen = %v, want %v (RepairCommit must persist)", got, want)
	}
}

// TestSchemaVersion: a store written by another layout version is refused,
// and the refusal leaves it as it was.
func TestSchemaVersion(t *testing.T) {
	for _, c := range []struct {
		name  string
		value []byte
	}{
		{"a newer version", be64(store.SchemaVersion + 1)},
		{"an older version", be64(store.SchemaVersion - 1)},
		{"version 0", be64(0)},
		{"short value", []byte{1}},
		{"long value", append(be64(store.SchemaVersion), 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := pebble.Open(dir, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set([]byte{0x00, 'v'}, c.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err := store.Open(dir, nil); err == nil {
				s.Close()
				t.Fatalf("Open of a store with schema version %x: no error", c.value)
			}
			db, err = pebble.Open(dir, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			v, closer, err := db.Get([]byte{0x00, 'v'})
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			if !bytes.Equal(v, c.value) {
				t.Fatalf("refused Open rewrote the version to %x", v)
			}
		})
	}
	t.Run("current", func(t *testing.T) {
		dir := t.TempDir()
		openStore(t, dir).Close()
		s := openStore(t, dir) // reopening its own store works
		v, err := s.Get([]byte{0x00, 'v'})
		s.Close()
		if err != nil || !bytes.Equal(v, be64(store.SchemaVersion)) {
			t.Fatalf("version key = %x, %v; want %x", v, err, be64(store.SchemaVersion))
		}
	})
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// The tail of recent entries that SaveRaft keeps in memory answers Entries
// and Term exactly as the store does: through appends past its byte bound,
// a new leader's overwrite of a suffix, and compaction. A RaftLog opened
// afresh on the same store has an empty tail, so it reads the store only.
func TestRaftLogTailMatchesStore(t *testing.T) {
	const entryBytes, tailBytes = 4 << 10, 64 << 10
	store.SetTailMaxBytesForTest(t, tailBytes)
	s := openStore(t, t.TempDir())
	defer s.Close()
	l := raftLog(t, s)
	big := func(index, term uint64) *pb.Entry {
		e := ent(index, term)
		e.Data = append(e.Data, bytes.Repeat([]byte{byte(index)}, entryBytes)...)
		return e
	}
	save := func(lo, hi, term uint64) {
		t.Helper()
		var es []*pb.Entry
		for i := lo; i <= hi; i++ {
			es = append(es, big(i, term))
		}
		if err := l.SaveRaft(nil, es, false); err != nil {
			t.Fatal(err)
		}
	}
	compare := func(step string) {
		t.Helper()
		fresh := raftLog(t, s)
		first, last := bounds(t, l)
		if tf, tl, tb := l.TailForTest(); tl != last || tf < first || tb > tailBytes || (tl-tf+1)*entryBytes > tb {
			t.Fatalf("%s: the tail keeps %d..%d (%d bytes) of the log %d..%d; want a suffix within %d bytes", step, tf, tl, tb, first, last, tailBytes)
		}
		if f, la := bounds(t, fresh); f != first || la != last {
			t.Fatalf("%s: bounds %d..%d, the store's %d..%d", step, first, last, f, la)
		}
		for i := first - 1; i <= last+1; i++ {
			got, gerr := l.Term(i)
			want, werr := fresh.Term(i)
			if got != want || (gerr == nil) != (werr == nil) {
				t.Fatalf("%s: Term(%d) = %d, %v; the store's %d, %v", step, i, got, gerr, want, werr)
			}
		}
		for lo := first; lo <= last; lo++ {
			for _, hi := range []uint64{lo + 1, min(lo+4, last+1), last + 1} {
				for _, maxSize := range []uint64{0, 3 * entryBytes, 10 * entryBytes, 1 << 62} {
					got, gerr := l.Entries(lo, hi, maxSize)
					want, werr := fresh.Entries(lo, hi, maxSize)
					if (gerr == nil) != (werr == nil) || len(got) != len(want) {
						t.Fatalf("%s: Entries(%d, %d, %d) = %d entries, %v; the store's %d, %v", step, lo, hi, maxSize, len(got), gerr, len(want), werr)
					}
					for k := range got {
						if !proto.Equal(got[k], want[k]) {
							t.Fatalf("%s: Entries(%d, %d, %d)[%d] differs from the store's", step, lo, hi, maxSize, k)
						}
					}
					// The slice is the caller's: appending to it must not
					// change what the next call returns.
					_ = append(got[:0], ent(999, 9))
				}
			}
		}
	}
	for lo := uint64(1); lo <= 64; lo += 4 {
		save(lo, lo+3, 1)
	}
	compare("64 entries of 4 KiB, past the tail's bound")
	save(60, 62, 2)
	compare("a new leader's entries 60..62 replace 60..64")
	save(63, 70, 2)
	compare("appended after the overwrite")
	if _, err := l.Compact(50, &pb.ConfState{}); err != nil {
		t.Fatal(err)
	}
	compare("compacted to 50")
	if _, err := l.Compact(69, &pb.ConfState{}); err != nil {
		t.Fatal(err)
	}
	compare("compacted to 69, one entry left")
}
