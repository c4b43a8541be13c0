package store_test

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

func hashOf(i int64) tlog.Hash { return tlog.Hash(sha256.Sum256(be64(uint64(i)))) }

func TestReadHashes(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	for i := int64(0); i < 50; i++ {
		b.PutHash(i, hashOf(i))
	}
	// Neighbouring families must not leak into hash reads.
	b.PutCheckpoint(60, 61)
	b.PutRecord(60, []byte("record"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	for _, ix := range [][]int64{{}, {0}, {49}, {5, 1, 3}, {49, 0, 49, 7, 7}, {10, 11, 12, 13}} {
		got, err := s.ReadHashes(ix)
		if err != nil {
			t.Fatalf("ReadHashes(%v): %v", ix, err)
		}
		if len(got) != len(ix) {
			t.Fatalf("ReadHashes(%v) returned %d hashes", ix, len(got))
		}
		for k, x := range ix {
			if got[k] != hashOf(x) {
				t.Fatalf("ReadHashes(%v)[%d] = %x, want hash %d", ix, k, got[k], x)
			}
		}
	}
	for _, ix := range [][]int64{{50}, {1, 50, 2}, {60}, {-1}, {1 << 40}} {
		if got, err := s.ReadHashes(ix); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ReadHashes(%v) = %d hashes, %v; want ErrNotFound", ix, len(got), err)
		}
	}
}

// TestReadHashesBadValue: a stored hash of the wrong length is an error, not
// a truncated hash.
func TestReadHashesBadValue(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	b.Set(append([]byte{0x02, 'x'}, be64(3)...), []byte("short"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadHashes([]int64{3}); err == nil {
		t.Fatal("ReadHashes of a 5-byte stored hash: no error")
	}
}

func TestCheckpointCovering(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if _, _, err := s.CheckpointCovering(1); !store.IsNotFound(err) {
		t.Fatalf("CheckpointCovering on an empty store: %v, want ErrNotFound", err)
	}
	b := s.NewBatch()
	b.PutCheckpoint(10, 11)
	b.PutCheckpoint(20, 22)
	b.PutCheckpoint(300, 305)
	// Keys after the checkpoint family ('n' ledger state, 'x' hashes) must
	// not be mistaken for checkpoints.
	b.PutLedgerState([]byte("state"))
	b.PutHash(1000, hashOf(1))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ size, treeSize, seqno uint64 }{
		{0, 10, 11}, {1, 10, 11}, {10, 10, 11}, {11, 20, 22}, {20, 20, 22}, {21, 300, 305}, {256, 300, 305}, {300, 300, 305},
	} {
		ts, seq, err := s.CheckpointCovering(c.size)
		if err != nil || ts != c.treeSize || seq != c.seqno {
			t.Errorf("CheckpointCovering(%d) = %d, %d, %v; want %d, %d", c.size, ts, seq, err, c.treeSize, c.seqno)
		}
	}
	for _, size := range []uint64{301, 1 << 40, 1<<64 - 1} {
		if ts, seq, err := s.CheckpointCovering(size); !store.IsNotFound(err) {
			t.Errorf("CheckpointCovering(%d) = %d, %d, %v; want ErrNotFound", size, ts, seq, err)
		}
	}
	if seq, err := s.CheckpointAt(20); err != nil || seq != 22 {
		t.Errorf("CheckpointAt(20) = %d, %v", seq, err)
	}
	if _, err := s.CheckpointAt(21); !store.IsNotFound(err) {
		t.Errorf("CheckpointAt(21) error = %v, want ErrNotFound", err)
	}
}

func TestEntryAndRecord(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	e1, e2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	b := s.NewBatch()
	b.PutEntry(e1, 3, 9)
	b.PutEntry(e2, 1<<40, 1<<50)
	b.PutRecord(9, []byte("record 9"))
	b.PutLedgerState([]byte("state"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir)
	defer s.Close()
	if v, seq, err := s.Entry(e1); err != nil || v != 3 || seq != 9 {
		t.Errorf("Entry(e1) = %d, %d, %v; want view 3, seqno 9", v, seq, err)
	}
	if v, seq, err := s.Entry(e2); err != nil || v != 1<<40 || seq != 1<<50 {
		t.Errorf("Entry(e2) = %d, %d, %v", v, seq, err)
	}
	if _, _, err := s.Entry(sha256.Sum256([]byte("three"))); !store.IsNotFound(err) {
		t.Errorf("Entry(unknown) error = %v, want ErrNotFound", err)
	}
	if r, err := s.Record(9); err != nil || string(r) != "record 9" {
		t.Errorf("Record(9) = %q, %v", r, err)
	}
	if _, err := s.Record(10); !store.IsNotFound(err) {
		t.Errorf("Record(10) error = %v, want ErrNotFound", err)
	}
	if st, err := s.LedgerState(); err != nil || string(st) != "state" {
		t.Errorf("LedgerState = %q, %v", st, err)
	}
	// An uncommitted (closed) batch writes nothing.
	b = s.NewBatch()
	b.PutRecord(10, []byte("never"))
	b.Close()
	if _, err := s.Record(10); !store.IsNotFound(err) {
		t.Errorf("Record(10) after a closed batch: %v, want ErrNotFound", err)
	}
}

func TestLedgerStateFresh(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	if _, err := s.LedgerState(); !store.IsNotFound(err) {
		t.Fatalf("LedgerState of a new store: %v, want ErrNotFound", err)
	}
}

func TestScanRecords(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	for i := uint64(1); i <= 9; i++ {
		if i != 7 {
			b.PutRecord(i, []byte{byte(i)})
		}
	}
	b.PutHash(0, hashOf(0)) // a neighbouring family
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	var got []byte
	collect := func(seqno uint64, raw []byte) error {
		if uint64(raw[0]) != seqno {
			t.Fatalf("record %d holds %x", seqno, raw)
		}
		got = append(got, raw[0])
		return nil
	}
	if err := s.ScanRecords(2, 5, collect); err != nil || string(got) != "\x02\x03\x04\x05" {
		t.Fatalf("ScanRecords(2, 5): %x, %v", got, err)
	}
	for _, r := range [][2]uint64{{6, 8}, {7, 7}, {9, 10}, {10, 12}} {
		if err := s.ScanRecords(r[0], r[1], func(uint64, []byte) error { return nil }); err == nil {
			t.Errorf("ScanRecords(%d, %d) over a missing record succeeded", r[0], r[1])
		}
	}
	stop := errors.New("stop")
	if err := s.ScanRecords(1, 9, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("an error from fn came back as %v", err)
	}
}
