package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/log"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// stubbed is a store whose registrations are stubs into its raft log, as
// a node's after applying them, with its ledger files beside it.
type stubbed struct {
	s     *Store
	rl    *RaftLog
	dir   string // the store's
	files string // the ledger files'
	w     *ledgerfiles.Writer
	recs  [][]byte // whole records, seqno i at i-1
	raft  []uint64 // the raft entry each record's body is in
}

// raftBase is the raft index of the first entry stubbed writes, so that a
// raft index is never mistaken for a seqno in the checks.
const raftBase = 100

// newStubbed writes n records, seqno 1 to n, two to a raft entry, each
// entry's data holding the bodies amid other bytes; it applies them as
// stubs (the odd seqnos' only: the even ones whole, as a checkpoint's).
func newStubbed(t *testing.T, n int) *stubbed {
	t.Helper()
	st := &stubbed{dir: t.TempDir(), files: filepath.Join(t.TempDir(), "ledger")}
	var err error
	if st.s, err = Open(st.dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.s.Close() })
	if st.w, err = ledgerfiles.OpenWriter(st.files, 0, 5); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.w.Close() })
	if err := st.s.AttachFiles(ledgerfiles.NewReader(st.files), st.w.Synced()); err != nil {
		t.Fatal(err)
	}
	if !st.s.StubsEnabled() {
		t.Fatal("stubs not enabled with the files attached")
	}
	if st.rl, err = st.s.RaftLog(); err != nil {
		t.Fatal(err)
	}
	// Entries 1..raftBase-1 without records, as raft's own would be.
	var entries []*pb.Entry
	for i := uint64(1); i < raftBase; i++ {
		entries = append(entries, &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1)})
	}
	b := st.s.NewBatch()
	type put struct {
		seqno     uint64
		rec       []byte
		bodyStart int
		bodyLen   int
		raft, off uint64
	}
	var puts []put
	for seqno := uint64(1); seqno <= uint64(n); seqno += 2 {
		index := raftBase + (seqno-1)/2
		var data []byte
		for j := range uint64(2) {
			body := make([]byte, 200+int(seqno+j)%300)
			rand.Read(body)
			rec, err := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: seqno + j, Body: body, Policy: [32]byte{byte(seqno + j)}})
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, fmt.Sprintf("<junk %d>", seqno+j)...)
			off := uint64(len(data))
			data = append(data, body...)
			start := len(rec) - len(body) - 34
			if !bytes.Equal(rec[start:start+len(body)], body) {
				t.Fatal("the body is not where the test places it")
			}
			st.recs = append(st.recs, rec)
			st.raft = append(st.raft, index)
			puts = append(puts, put{seqno + j, rec, start, len(body), index, off})
		}
		entries = append(entries, &pb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(1), Data: data})
	}
	st.recs, st.raft = st.recs[:n], st.raft[:n]
	if err := st.rl.SaveRaft(&pb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(entries[len(entries)-1].GetIndex())}, entries, true); err != nil {
		t.Fatal(err)
	}
	// Applied ten records to a batch, as apply commits one batch a call.
	for i, p := range puts[:n] {
		if p.seqno%2 == 1 {
			b.PutRecordStub(p.seqno, p.rec, p.bodyStart, p.bodyLen, p.raft, p.off)
		} else {
			b.PutRecord(p.seqno, p.rec)
		}
		if i%10 == 9 || i == n-1 {
			b.SetApplied(p.raft, 1)
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b = st.s.NewBatch()
		}
	}
	b.Close()
	return st
}

// syncFiles appends records up to seqno to the ledger files, syncs them
// and tells the store, as the node's file follower does.
func (st *stubbed) syncFiles(t *testing.T, seqno uint64) {
	t.Helper()
	for st.w.Next() <= seqno {
		if err := st.w.Append(st.w.Next(), st.recs[st.w.Next()-1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.w.Sync(); err != nil {
		t.Fatal(err)
	}
	st.s.FilesSynced(st.w.Synced())
}

// checkRecords reads every record through Record and ScanRecords.
func (st *stubbed) checkRecords(t *testing.T, s *Store) {
	t.Helper()
	for i, want := range st.recs {
		got, err := s.Record(uint64(i + 1))
		if err != nil {
			t.Fatalf("Record(%d): %v", i+1, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Record(%d) is not the record written", i+1)
		}
	}
	next := uint64(1)
	err := s.ScanRecords(1, uint64(len(st.recs)), func(seqno uint64, raw []byte) error {
		if seqno != next || !bytes.Equal(raw, st.recs[seqno-1]) {
			return fmt.Errorf("ScanRecords gave seqno %d (want %d) or not its record", seqno, next)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (st *stubbed) compact(t *testing.T) uint64 {
	t.Helper()
	last, _ := st.rl.LastIndex()
	done, err := st.rl.Compact(last, &pb.ConfState{Voters: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func TestStubsReadFromRaftThenFiles(t *testing.T) {
	st := newStubbed(t, 20)
	if v, _ := st.s.Get(recordKey(1)); !isStub(v) || len(v) > 100 {
		t.Fatalf("record 1 stored as %d bytes, not a stub", len(v))
	}
	st.checkRecords(t, st.s)

	// No file holds a record: the log keeps every entry a stub reads.
	if done := st.compact(t); done != st.raft[0]-1 {
		t.Fatalf("compacted to %d with no record in the files; want %d", done, st.raft[0]-1)
	}
	// The files hold part of the first batch's records: its entries stay.
	st.syncFiles(t, 7)
	if done := st.compact(t); done != st.raft[0]-1 {
		t.Fatalf("compacted to %d with the files at 7; want %d", done, st.raft[0]-1)
	}
	// They hold the first batch's (1..10) and more: its entries go, up
	// to the one that holds the second batch's first stub (seqno 11).
	st.syncFiles(t, 12)
	if done := st.compact(t); done != st.raft[10]-1 {
		t.Fatalf("compacted to %d with the files at 12; want %d (the entry before seqno 11's)", done, st.raft[10]-1)
	}
	if _, err := raftEntryData(st.s.db, st.raft[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("raft entry %d after compaction: %v", st.raft[0], err)
	}
	st.checkRecords(t, st.s) // 1..12 from the files now, the rest from raft

	st.syncFiles(t, 20)
	last, _ := st.rl.LastIndex()
	if done := st.compact(t); done != last {
		t.Fatalf("compacted to %d with every record in the files; want %d", done, last)
	}
	st.checkRecords(t, st.s)
}

func TestStubsPinnedAgainAfterRestart(t *testing.T) {
	st := newStubbed(t, 20)
	st.syncFiles(t, 6)
	st.w.Close()
	st.s.Close()
	var err error
	if st.s, err = Open(st.dir, nil); err != nil {
		t.Fatal(err)
	}
	if st.rl, err = st.s.RaftLog(); err != nil {
		t.Fatal(err)
	}
	if st.w, err = ledgerfiles.OpenWriter(st.files, 0, 5); err != nil {
		t.Fatal(err)
	}
	if st.w.Synced() != 6 {
		t.Fatalf("files synced to %d after reopening, want 6", st.w.Synced())
	}
	if err := st.s.AttachFiles(ledgerfiles.NewReader(st.files), st.w.Synced()); err != nil {
		t.Fatal(err)
	}
	if done := st.compact(t); done != st.raft[6]-1 {
		t.Fatalf("compacted to %d after a restart with the files at 6; want %d", done, st.raft[6]-1)
	}
	st.checkRecords(t, st.s)
}

func TestImageCarriesWholeRecords(t *testing.T) {
	st := newStubbed(t, 20)
	st.syncFiles(t, 9)
	st.compact(t)
	meta, img := image(t, st.s)
	dst := emptyStore(t) // no ledger files: every record must arrive whole
	install(t, dst, meta, img)
	st.checkRecords(t, dst)
}

func TestInstallKeepsStubsReadable(t *testing.T) {
	st := newStubbed(t, 20)
	st.syncFiles(t, 5)
	// What an install does before it wipes the raft log.
	if err := st.s.materializePinned(); err != nil {
		t.Fatal(err)
	}
	if err := st.s.wipeState(false); err != nil {
		t.Fatal(err)
	}
	for seqno := uint64(6); seqno <= 20; seqno++ {
		if v, _ := st.s.Get(recordKey(seqno)); isStub(v) {
			t.Fatalf("record %d is still a stub after materializing", seqno)
		}
	}
	st.checkRecords(t, st.s)
	if _, ok := st.s.pinnedRaftIndex(); ok {
		t.Fatal("pins left after materializing")
	}
}

func TestStubChecksBody(t *testing.T) {
	st := newStubbed(t, 2)
	v, err := st.s.Get(recordKey(1))
	if err != nil {
		t.Fatal(err)
	}
	stb, err := parseStub(v)
	if err != nil {
		t.Fatal(err)
	}
	data, err := raftEntryData(st.s.db, stb.raftIndex)
	if err != nil {
		t.Fatal(err)
	}
	data[stb.dataOff] ^= 1
	if _, err := stb.assemble(1, data); err == nil {
		t.Fatal("a body that does not match its checksum was assembled")
	}
	stb.bodyLen = uint64(len(data))
	if _, err := stb.assemble(1, data); err == nil {
		t.Fatal("a body beyond its raft entry was assembled")
	}
	for _, bad := range [][]byte{{stubMarker}, {stubMarker, 2}, v[:5], append(v[:2:2], 0xff, 0xff)} {
		if _, err := parseStub(bad); err == nil {
			t.Fatalf("parseStub(%x) succeeded", bad)
		}
	}
}

func TestStubWithoutFiles(t *testing.T) {
	st := newStubbed(t, 4)
	st.syncFiles(t, 4)
	st.compact(t)
	st.s.bodies.files = nil // a store that lost its files
	if _, err := st.s.Record(1); err == nil {
		t.Fatal("a stub whose files are gone was read")
	}
}

// TestStubChecksFiles: a record read back from the ledger files must be
// the one the stub describes; a file that says otherwise is an error, not
// an answer.
func TestStubChecksFiles(t *testing.T) {
	st := newStubbed(t, 4)
	// The files get another record 1 (same length, one body byte off).
	bad := append([]byte(nil), st.recs[0]...)
	bad[len(bad)-40] ^= 1
	st.recs[0], bad = bad, st.recs[0]
	st.syncFiles(t, 4)
	st.recs[0] = bad
	st.compact(t)
	if _, err := st.s.Record(1); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Record(1) from a file that does not match its stub: %v", err)
	}
	if _, err := st.s.Record(3); err != nil {
		t.Fatalf("Record(3): %v", err)
	}
	// In bulk too: a scan stops at the record, having given those before.
	var got []uint64
	err := st.s.ScanRecords(1, 4, func(seqno uint64, _ []byte) error { got = append(got, seqno); return nil })
	if err == nil || !strings.Contains(err.Error(), "does not match") || len(got) != 0 {
		t.Fatalf("ScanRecords over a file that does not match a stub: gave %v, %v", got, err)
	}
	got = got[:0]
	if err := st.s.ScanRecords(2, 4, func(seqno uint64, _ []byte) error { got = append(got, seqno); return nil }); err != nil || len(got) != 3 {
		t.Fatalf("ScanRecords(2, 4): gave %v, %v", got, err)
	}
}

// TestStubSize: PutRecordStub sizes the batch's value with stubSize and
// writes it with appendStub; the two must agree for every field width, or
// the value would be cut or padded.
func TestStubSize(t *testing.T) {
	rec := make([]byte, 300)
	for _, raft := range []uint64{0, 1, 127, 128, 1 << 20, 1<<63 + 5} {
		for _, off := range []uint64{0, 200, 1 << 14, 1 << 30} {
			for _, span := range [][2]int{{0, 0}, {10, 0}, {50, 200}, {0, 300}, {130, 170}} {
				got := appendStub(nil, raft, off, rec, span[0], span[1])
				if want := stubSize(raft, off, len(rec), span[0], span[1]); len(got) != want {
					t.Fatalf("raft %d off %d body %v: appendStub wrote %d bytes, stubSize says %d", raft, off, span, len(got), want)
				}
				st, err := parseStub(got)
				if err != nil || st.raftIndex != raft || st.dataOff != off || st.bodyLen != uint64(span[1]) || len(st.prefix) != span[0] {
					t.Fatalf("raft %d off %d body %v: parsed %+v, %v", raft, off, span, st, err)
				}
			}
		}
	}
}
