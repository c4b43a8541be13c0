package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/charterlog/charter/log"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/mod/sumdb/tlog"
)

// entryOf is the leaf entry of a record of newHistory's: its statement's
// hash for a registration, log.ComputeEntry for a checkpoint.
func entryOf(rec *log.Record) ([32]byte, error) {
	if rec.Type == log.TxRegistration {
		return sha256.Sum256(rec.Body), nil
	}
	return log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body), nil
}

// withStateImages makes followers missing more than after transactions
// get state images, for the test.
func withStateImages(t *testing.T, after uint64) {
	old := stateImageAfter
	stateImageAfter = after
	t.Cleanup(func() { stateImageAfter = old })
}

func install(t *testing.T, s *Store, meta *pb.SnapshotMetadata, image []byte) {
	t.Helper()
	path, err := s.StageSnapshot(t.TempDir(), bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	rl, err := s.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.InstallSnapshot(path, meta); err != nil {
		t.Fatal(err)
	}
}

func header(t *testing.T, image []byte) imageHeader {
	t.Helper()
	hdr, err := peekHeader(bufio.NewReader(bytes.NewReader(image)))
	if err != nil {
		t.Fatal(err)
	}
	return hdr
}

// backfillStep fetches the next range of follower's gap from leader, as
// the peer protocol does, and writes it; maxBytes bounds the range.
func backfillStep(t *testing.T, leader, follower *Store, maxBytes int) error {
	t.Helper()
	g, ok := follower.History()
	if !ok {
		t.Fatal("history already complete")
	}
	want, _, _, _ := BackfillLevel(g.Floor, g.Next, MaxBackfillLevel)
	level, proof, recs, err := leader.HistoryRange(g.Floor, g.Next, want, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	return follower.Backfill(g.Floor, g.Next, level, proof, recs, entryOf)
}

// A new follower is sent a state image much smaller than the whole
// ledger, is usable at once for what lies after its floor, answers
// ErrHistoryIncomplete for what lies below, and after backfill holds
// exactly the leader's state.
func TestStateImageAndBackfill(t *testing.T) {
	withStateImages(t, 100)
	h := newHistory(t, 3000, "main")
	leader, follower := emptyStore(t), emptyStore(t)
	h.write(t, leader, 3000, 4000)

	stateImageAfter = 1 << 40
	_, _, whole := openImage(t, leader, Base{})
	stateImageAfter = 100
	meta, used, image := openImage(t, leader, Base{})
	hdr := header(t, image)
	// The newest checkpoint (at seqno 3000) signs the tree of 2998.
	if used != (Base{}) || hdr.Floor != 2998 || hdr.Base != (Base{}) {
		t.Fatalf("image base %+v, header %+v; want a state image with floor 2998", used, hdr)
	}
	if header(t, whole).Floor != 0 {
		t.Fatal("the whole image has a floor")
	}
	t.Logf("3000 transactions: whole image %d bytes, state image %d bytes", len(whole), len(image))
	// The state image holds the entry index (2000 registrations, 52 bytes
	// each), the tree's edge, two transactions and the state.
	if len(image)*3 > len(whole) {
		t.Fatalf("state image %d bytes, whole %d", len(image), len(whole))
	}

	install(t, follower, meta, image)
	g, ok := follower.History()
	if !ok || g != (HistoryGap{Next: 0, Floor: 2998}) {
		t.Fatalf("gap %+v %v, want 0..2998", g, ok)
	}
	// Usable: the tree's root at every size from the floor, the records
	// after it, the whole entry index.
	lr, _ := tlog.TreeHash(3000, leader)
	fr, err := tlog.TreeHash(3000, follower)
	if err != nil || fr != lr {
		t.Fatalf("follower's root %x (%v), leader's %x", fr, err, lr)
	}
	if r, _ := tlog.TreeHash(2998, leader); r != must(tlog.TreeHash(2998, follower)) {
		t.Fatal("root at the floor differs")
	}
	if _, err := follower.Record(2999); err != nil {
		t.Fatalf("record after the floor: %v", err)
	}
	if _, err := follower.Record(1); err != nil {
		t.Fatalf("the genesis record, which a node reads as it starts: %v", err)
	}
	if _, seq, err := follower.Entry(h.recOf[0].Entry); err != nil || seq != 1 {
		t.Fatalf("the first registration's index item: %d, %v", seq, err)
	}
	// Honest about the gap: no NotFound, no wrong answer.
	if _, err := follower.Record(5); !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("record in the gap: %v", err)
	}
	if err := follower.ScanRecords(2990, 3000, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("scan into the gap: %v", err)
	}
	if _, err := follower.ReadHashes([]int64{tlog.StoredHashIndex(0, 7)}); !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("hash in the gap: %v", err)
	}
	if _, _, err := follower.CheckpointCovering(10); !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("checkpoint covering 10: %v", err)
	}
	if _, err := follower.Record(3001); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record beyond the ledger: %v", err)
	}
	if b, _ := follower.LedgerBase(); b != (Base{}) {
		t.Fatalf("base with nothing backfilled: %+v", b)
	}

	// Backfill, some ranges cut down by the leader's byte bound.
	steps := 0
	for {
		if steps == 3 {
			// Receipts of what is backfilled are served before the rest:
			// its first covering checkpoint is known once its record is.
			g, _ := follower.History()
			if ts, seq, err := follower.CheckpointCovering(10); err != nil || ts != 10 || seq != 12 || g.Next < 12 {
				t.Fatalf("checkpoint covering 10 with history to %d: %d at %d, %v", g.Next, ts, seq, err)
			}
			if _, _, err := follower.CheckpointCovering(g.Next); !errors.Is(err, ErrHistoryIncomplete) {
				t.Fatalf("checkpoint covering %d, whose first checkpoint is in the gap: %v", g.Next, err)
			}
		}
		if _, ok := follower.History(); !ok {
			break
		}
		maxBytes := 1 << 20
		if steps%3 == 1 {
			maxBytes = 2000
		}
		if err := backfillStep(t, leader, follower, maxBytes); err != nil {
			t.Fatal(err)
		}
		steps++
	}
	t.Logf("backfilled in %d ranges", steps)
	sameState(t, follower, leader)
	if b, _ := follower.LedgerBase(); b.Size != 3000 || b.Root != lr {
		t.Fatalf("base after backfill %+v", b)
	}
}

func must(h tlog.Hash, err error) tlog.Hash {
	if err != nil {
		panic(err)
	}
	return h
}

// A range that is not the ledger's history is refused and writes nothing:
// an altered body, another ledger's records, a wrong proof, the wrong
// place.
func TestBackfillRefusesWrongRange(t *testing.T) {
	withStateImages(t, 100)
	h := newHistory(t, 1000, "main")
	fork := newHistory(t, 1000, "fork")
	leader, forked, follower := emptyStore(t), emptyStore(t), emptyStore(t)
	h.write(t, leader, 1000, 1500)
	fork.write(t, forked, 1000, 1500)
	meta, _, image := openImage(t, leader, Base{})
	install(t, follower, meta, image)
	g, _ := follower.History()
	// 64 transactions, three levels below the first subtree of the floor's
	// tree (512): a proof of three hashes.
	level, _, _, _ := BackfillLevel(g.Floor, 0, 6)
	lvl, proof, recs, err := leader.HistoryRange(g.Floor, 0, level, 1<<20)
	if err != nil || lvl != 6 || len(proof) != 3 {
		t.Fatalf("range: level %d, %d hashes, %v", lvl, len(proof), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, fproof, frecs, err := forked.HistoryRange(g.Floor, 0, level, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	altered := append([][]byte(nil), recs...)
	rec := *h.recOf[3]
	rec.Body = []byte("not what was registered")
	altered[3], _ = log.MarshalRecord(&rec)
	rehashed := append([][]byte(nil), recs...)
	rec.Entry = sha256.Sum256(rec.Body) // consistent, but not the tree's
	rehashed[3], _ = log.MarshalRecord(&rec)
	badProof := append([]tlog.Hash(nil), proof...)
	badProof[0][0] ^= 1

	for name, c := range map[string]struct {
		from  uint64
		proof []tlog.Hash
		recs  [][]byte
		want  error
	}{
		"altered body":    {0, proof, altered, ErrBackfillVerify},
		"rehashed record": {0, proof, rehashed, ErrBackfillVerify},
		"forked ledger":   {0, fproof, frecs, ErrBackfillVerify},
		"forked records":  {0, proof, frecs, ErrBackfillVerify},
		"wrong proof":     {0, badProof, recs, ErrBackfillVerify},
		"short range":     {0, proof, recs[:len(recs)-1], ErrBackfillVerify},
		"wrong place":     {1 << lvl, proof, recs, ErrBackfillRange},
	} {
		err := follower.Backfill(g.Floor, c.from, lvl, c.proof, c.recs, entryOf)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if now, _ := follower.History(); now != g {
			t.Fatalf("%s: gap moved to %+v", name, now)
		}
		if _, err := follower.Record(2); !errors.Is(err, ErrHistoryIncomplete) {
			t.Fatalf("%s: record 2 written: %v", name, err)
		}
	}
	if err := follower.Backfill(g.Floor, 0, lvl, proof, recs, entryOf); err != nil {
		t.Fatalf("the right range: %v", err)
	}

	// The peer refuses ranges that are no subtree of the floor's tree.
	if _, _, _, err := leader.HistoryRange(g.Floor, 3, 2, 1<<20); !errors.Is(err, ErrBackfillRange) {
		t.Errorf("misaligned: %v", err)
	}
	if _, _, _, err := leader.HistoryRange(g.Floor, 0, MaxBackfillLevel+1, 1<<20); !errors.Is(err, ErrBackfillRange) {
		t.Errorf("too large: %v", err)
	}
	if _, _, _, err := leader.HistoryRange(5000, 0, 2, 1<<20); !errors.Is(err, ErrBackfillRange) {
		t.Errorf("beyond the ledger: %v", err)
	}
	// A node with a gap serves none of it.
	if _, _, _, err := follower.HistoryRange(g.Floor, 512, 8, 1<<20); !errors.Is(err, ErrHistoryIncomplete) {
		t.Errorf("a range in the server's own gap: %v", err)
	}
}

// Backfill resumes where it was after the store is closed (a crash loses
// at most unsynced ranges, fetched again), and a node with a gap serves a
// new follower a state image of its own.
func TestBackfillResumes(t *testing.T) {
	withStateImages(t, 100)
	h := newHistory(t, 2000, "main")
	leader := emptyStore(t)
	h.write(t, leader, 2000, 2500)
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, _, image := openImage(t, leader, Base{})
	install(t, s, meta, image)
	for i := 0; i < 3; i++ {
		if err := backfillStep(t, leader, s, 4000); err != nil {
			t.Fatal(err)
		}
	}
	mid, _ := s.History()
	if mid.Next == 0 {
		t.Fatal("nothing backfilled")
	}

	// Meanwhile, a new node is sent an image by the one with the gap.
	other := emptyStore(t)
	meta2, _, image2 := openImage(t, s, Base{})
	if hdr := header(t, image2); hdr.Floor < mid.Floor {
		t.Fatalf("a node with a gap to %d sent floor %d", mid.Floor, hdr.Floor)
	}
	install(t, other, meta2, image2)
	// And a follower that holds a prefix no longer than the backfilled
	// one gets a state image relative to it.
	if _, used, image3 := openImage(t, s, Base{Size: mid.Next, Root: must(tlog.TreeHash(int64(mid.Next), leader))}); used.Size != mid.Next || header(t, image3).Floor == 0 {
		t.Fatalf("base 100 on a node with history to %d: used %+v, floor %d", mid.Next, used, header(t, image3).Floor)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if g, ok := s.History(); !ok || g != mid {
		t.Fatalf("after reopening: gap %+v %v, want %+v", g, ok, mid)
	}
	if b, _ := s.LedgerBase(); b.Size != mid.Next {
		t.Fatalf("base %d with history to %d", b.Size, mid.Next)
	}
	for {
		if _, ok := s.History(); !ok {
			break
		}
		if err := backfillStep(t, leader, s, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, s, leader)
	for {
		if _, ok := other.History(); !ok {
			break
		}
		if err := backfillStep(t, leader, other, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, other, leader)
}

// An image of the older format (CHARTER-SNAPSHOT-2, no floor) still
// installs.
func TestVersion2ImageInstalls(t *testing.T) {
	h := newHistory(t, 300, "main")
	leader, follower := emptyStore(t), emptyStore(t)
	h.write(t, leader, 300, 500)
	meta, _, image := openImage(t, leader, Base{})
	hdrLen := len(snapshotMagic) + 1 + tlog.HashSize
	if !bytes.HasPrefix(image, []byte(snapshotMagic)) || image[hdrLen] != 0 {
		t.Fatal("not a v3 delta image")
	}
	v2 := append([]byte(snapshotMagicV2), image[len(snapshotMagic):hdrLen]...)
	v2 = append(v2, image[hdrLen+1:len(image)-sha256.Size]...)
	sum := sha256.Sum256(v2)
	v2 = append(v2, sum[:]...)
	install(t, follower, meta, v2)
	sameState(t, follower, leader)
	if _, ok := follower.History(); ok {
		t.Fatal("a v2 image left a gap")
	}
}

// BenchmarkImage measures what a new node costs: the image's size and the
// time to install it, whole (before) and as a state image plus backfill
// (after), at 50k and 200k transactions of about 220 bytes.
func BenchmarkImage(b *testing.B) {
	for _, n := range []int{50_000, 200_000} {
		h := newHistoryPad(b, n, "bench", 160)
		leader := emptyStore(b)
		h.write(b, leader, n, uint64(n)+10)
		for _, mode := range []string{"whole", "state+backfill"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				old := stateImageAfter
				defer func() { stateImageAfter = old }()
				if mode == "whole" {
					stateImageAfter = 1 << 40
				} else {
					stateImageAfter = 4096
				}
				for i := 0; i < b.N; i++ {
					start := time.Now()
					follower := emptyStore(b)
					meta, _, r, err := leader.OpenSnapshot(Base{})
					if err != nil {
						b.Fatal(err)
					}
					var buf bytes.Buffer
					if _, err := buf.ReadFrom(r); err != nil {
						b.Fatal(err)
					}
					path, err := follower.StageSnapshot(b.TempDir(), bytes.NewReader(buf.Bytes()))
					if err != nil {
						b.Fatal(err)
					}
					rl, _ := follower.RaftLog()
					if err := rl.InstallSnapshot(path, meta); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(buf.Len()), "image-bytes")
					// Usable from here: what follows is the backfill.
					b.ReportMetric(float64(time.Since(start).Milliseconds()), "installed-ms")
					ranges, fetched := 0, 0
					for {
						g, ok := follower.History()
						if !ok {
							break
						}
						want, _, _, _ := BackfillLevel(g.Floor, g.Next, MaxBackfillLevel)
						level, proof, recs, err := leader.HistoryRange(g.Floor, g.Next, want, 16<<20)
						if err != nil {
							b.Fatal(err)
						}
						for _, r := range recs {
							fetched += len(r)
						}
						for _, p := range proof {
							fetched += len(p)
						}
						if err := follower.Backfill(g.Floor, g.Next, level, proof, recs, entryOf); err != nil {
							b.Fatal(err)
						}
						ranges++
					}
					b.ReportMetric(float64(fetched), "backfill-bytes")
					b.ReportMetric(float64(ranges), "ranges")
				}
			})
		}
	}
}

// A follower that holds a prefix but missed more than a delta may carry
// is sent a state image relative to its prefix: it keeps the prefix and
// backfills only from there.
func TestStateImageKeepsPrefix(t *testing.T) {
	withStateImages(t, 100)
	h := newHistory(t, 3000, "main")
	leader, follower := emptyStore(t), emptyStore(t)
	h.write(t, leader, 3000, 4000)
	h.write(t, follower, 1001, 1500)
	base, err := follower.LedgerBase()
	if err != nil {
		t.Fatal(err)
	}
	meta, used, image := openImage(t, leader, base)
	if hdr := header(t, image); used != base || hdr.Floor != 2998 {
		t.Fatalf("image relative to %+v with floor %d; want the follower's base and 2998", used, hdr.Floor)
	}
	install(t, follower, meta, image)
	if g, ok := follower.History(); !ok || g != (HistoryGap{Next: 1001, Floor: 2998}) {
		t.Fatalf("gap %+v %v, want 1001..2998", g, ok)
	}
	if _, err := follower.Record(1001); err != nil {
		t.Fatalf("the prefix it held: %v", err)
	}
	steps := 0
	for {
		if _, ok := follower.History(); !ok {
			break
		}
		if err := backfillStep(t, leader, follower, 1<<20); err != nil {
			t.Fatal(err)
		}
		steps++
	}
	t.Logf("backfilled from 1001 in %d ranges", steps)
	sameState(t, follower, leader)
}
