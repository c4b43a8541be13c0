package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// filledStore returns a store with ledger and KV keys, an applied position
// and a configuration, as a node's after applying some entries.
func filledStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rl, err := s.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	for i := uint64(1); i <= 50; i++ {
		b.PutRecord(i, bytes.Repeat([]byte{byte(i)}, 100))
	}
	b.PutKV("public:test", []byte("k"), []byte("v"))
	b.SetApplied(42, 3)
	if err := rl.SetConfState(b, &pb.ConfState{Voters: []uint64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return s
}

func emptyStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func image(t *testing.T, s *Store) (*pb.SnapshotMetadata, []byte) {
	t.Helper()
	meta, base, r, err := s.OpenSnapshot(Base{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if base != (Base{}) {
		t.Fatalf("a whole image is relative to %+v", base)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return meta, b
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := filledStore(t)
	meta, img := image(t, src)
	if meta.GetIndex() != 42 || meta.GetTerm() != 3 || len(meta.GetConfState().GetVoters()) != 3 {
		t.Fatalf("metadata %v", meta)
	}
	dst, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// The destination has state of its own that the image must replace.
	b := dst.NewBatch()
	b.PutRecord(999, []byte("stale"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, err := dst.StageSnapshot(dir, bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	rl, err := dst.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.InstallSnapshot(path, meta); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 50; i++ {
		v, err := dst.Record(i)
		if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 100)) {
			t.Fatalf("record %d: %x, %v", i, v, err)
		}
	}
	if _, err := dst.Record(999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stale record survived the install: %v", err)
	}
	if v, err := dst.GetKV("public:test", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("kv: %q, %v", v, err)
	}
	if idx, term, err := dst.AppliedPosition(); idx != 42 || term != 3 || err != nil {
		t.Fatalf("applied %d/%d, %v", idx, term, err)
	}
	if first, _ := rl.FirstIndex(); first != 43 {
		t.Fatalf("first index %d after install, want 43", first)
	}
	if last, _ := rl.LastIndex(); last != 42 {
		t.Fatalf("last index %d after install, want 42", last)
	}
	if hs := rl.HardState(); hs.GetCommit() < 42 {
		t.Fatalf("commit %d below the snapshot", hs.GetCommit())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("staged image not removed: %v", err)
	}
}

// Every altered byte and every truncation of an image is refused at
// staging, before raft or the store sees it.
func TestStageSnapshotRejectsMangled(t *testing.T) {
	_, img := image(t, filledStore(t))
	dst := emptyStore(t)
	dir := t.TempDir()
	for i := 0; i < len(img); i += max(1, len(img)/200) {
		bad := append([]byte(nil), img...)
		bad[i] ^= 0x01
		if _, err := dst.StageSnapshot(dir, bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipped byte %d staged", i)
		}
	}
	for _, n := range []int{0, 1, len(img) / 2, len(img) - 1} {
		if _, err := dst.StageSnapshot(dir, bytes.NewReader(img[:n])); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("truncation to %d: %v", n, err)
		}
	}
	if _, err := dst.StageSnapshot(dir, bytes.NewReader(append(img, 0))); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("trailing byte: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("refused images left files: %v", left)
	}
}

// An install interrupted after a marker of the older format (no staged
// image named) leaves a store that Open wipes back to empty (the node is
// then sent a snapshot again), never a mixture.
func TestInterruptedInstallIsWiped(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.PutRecord(1, []byte("half"))
	b.SetApplied(7, 2)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	meta, _ := proto.Marshal(&pb.SnapshotMetadata{Index: proto.Uint64(7)})
	if err := s.db.Set(keyInstalling, meta, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Record(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-installed record survived: %v", err)
	}
	if idx, _ := s.Applied(); idx != 0 {
		t.Fatalf("applied %d after wipe", idx)
	}
	if _, err := s.Get(keyInstalling); !errors.Is(err, ErrNotFound) {
		t.Fatalf("marker survived: %v", err)
	}
}

// An install interrupted after its marker is completed by Open from the
// staged image, at every step of the install: the node comes back with
// the whole new state, never less than it had (raft's leader may count on
// it) and never a mixture.
func TestInterruptedInstallCompletes(t *testing.T) {
	src := filledStore(t)
	meta, img := image(t, src)
	for _, step := range []string{"marker", "wiped", "half written"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			b := s.NewBatch()
			b.PutRecord(999, []byte("old state"))
			b.SetApplied(5, 1)
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			path, err := s.StageSnapshot(t.TempDir(), bytes.NewReader(img))
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
			if step != "marker" {
				if err := s.wipeState(true); err != nil {
					t.Fatal(err)
				}
			}
			if step == "half written" {
				b := s.NewBatch()
				for i := uint64(1); i <= 20; i++ {
					b.PutRecord(i, bytes.Repeat([]byte{byte(i)}, 100))
				}
				if err := b.Commit(false); err != nil {
					t.Fatal(err)
				}
			}
			s.Close() // the crash: nothing after this step ran
			s, err = Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := uint64(1); i <= 50; i++ {
				if v, err := s.Record(i); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 100)) {
					t.Fatalf("record %d after recovery: %x, %v", i, v, err)
				}
			}
			if _, err := s.Record(999); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the old state survived: %v", err)
			}
			if idx, term, err := s.AppliedPosition(); idx != 42 || term != 3 || err != nil {
				t.Fatalf("applied %d/%d, %v; want the snapshot's 42/3", idx, term, err)
			}
			rl, err := s.RaftLog()
			if err != nil {
				t.Fatal(err)
			}
			if first, _ := rl.FirstIndex(); first != 43 {
				t.Fatalf("first index %d, want 43", first)
			}
			if hs := rl.HardState(); hs.GetCommit() < 42 {
				t.Fatalf("commit %d below the snapshot", hs.GetCommit())
			}
			if _, err := s.Get(keyInstalling); !errors.Is(err, ErrNotFound) {
				t.Fatalf("marker survived: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("staged image not removed: %v", err)
			}
		})
	}
}

// FuzzStageSnapshot: images come from peers; staging never panics, and an
// image it accepts has only keys of the snapshot's families.
func FuzzStageSnapshot(f *testing.F) {
	s, err := Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	b := s.NewBatch()
	b.PutRecord(1, []byte("r"))
	b.SetApplied(1, 1)
	if err := b.Commit(true); err != nil {
		f.Fatal(err)
	}
	_, _, r, err := s.OpenSnapshot(Base{})
	if err != nil {
		f.Fatal(err)
	}
	img, _ := io.ReadAll(r)
	r.Close()
	f.Cleanup(func() { s.Close() })
	f.Add(img)
	f.Add([]byte(snapshotMagic))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path, err := s.StageSnapshot(dir, bytes.NewReader(b))
		if err != nil {
			return
		}
		defer os.Remove(path)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		all, _ := io.ReadAll(fh)
		if !bytes.Equal(all, b) {
			t.Fatal("staged bytes differ from the input")
		}
	})
}

func TestRemoveStaged(t *testing.T) {
	dir := t.TempDir()
	_, img := image(t, filledStore(t))
	path, err := emptyStore(t).StageSnapshot(dir, bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStaged(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("staged image kept: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file that is not a staged image was removed: %v", err)
	}
}
