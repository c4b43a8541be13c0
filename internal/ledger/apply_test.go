package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// applyLedger opens a ledger over a fresh store, with no sequencer: the
// test is the consensus layer and calls Apply itself.
func applyLedger(t testing.TB) *Ledger {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := Open(st, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// entryOf is one raft entry holding props.
func entryOf(t testing.TB, index, term uint64, props ...log.Proposal) Entry {
	t.Helper()
	data, err := log.MarshalBatch(&log.Batch{Proposals: props})
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Index: index, Term: term, Data: data}
}

// applyTxs are transactions of every type, and every way Apply treats
// one: appended, answered as a duplicate, skipped as invalid, refused for
// a changed read, ignored.
type applyTxs struct {
	genesis, regA, regB, writes, badWrites, reserved, app, conflict, governed, badApp log.Proposal
}

func newApplyTxs(t *testing.T) applyTxs {
	t.Helper()
	writeSet := func(ws *log.WriteSet) log.Proposal {
		body, err := log.MarshalWriteSet(ws)
		if err != nil {
			t.Fatal(err)
		}
		return log.Proposal{Type: log.TxWrites, Entry: sha256.Sum256(body), Body: body}
	}
	appTx := func(tx *log.AppTx) log.Proposal {
		body, err := log.MarshalAppTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		return log.Proposal{Type: log.TxApp, Entry: sha256.Sum256(body), Body: body}
	}
	reg := func(i byte) log.Proposal {
		body := []byte{'s', i}
		return log.Proposal{Type: log.TxRegistration, Entry: sha256.Sum256(body), Body: body, Policy: [32]byte{i}}
	}
	k := []byte("k")
	return applyTxs{
		genesis:   log.Proposal{Type: log.TxGenesis, Body: []byte("genesis")},
		regA:      reg(1),
		regB:      reg(2),
		writes:    writeSet(&log.WriteSet{Writes: []log.Write{{Map: "public:test.a", Key: k, Value: []byte("w")}, {Map: "public:test.a", Key: []byte("gone"), Delete: true}}}),
		badWrites: log.Proposal{Type: log.TxWrites, Entry: sha256.Sum256([]byte("not cbor")), Body: []byte("not cbor")},
		reserved:  writeSet(&log.WriteSet{Writes: []log.Write{{Map: "public:charter.nodes", Key: k, Value: []byte("x")}}}),
		// app writes k, which conflict read as absent: applied after app
		// in the same call, it sees app's write.
		app:      appTx(&log.AppTx{Writes: []log.Write{{Map: "private:test.b", Key: k, Value: []byte("a")}}, Reads: []log.Read{{Map: "private:test.b", Key: k, Digest: log.ValueDigest(nil, false)}}}),
		conflict: appTx(&log.AppTx{Writes: []log.Write{{Map: "private:test.b", Key: k, Value: []byte("c")}}, Reads: []log.Read{{Map: "private:test.b", Key: k, Digest: log.ValueDigest(nil, false)}}}),
		governed: appTx(&log.AppTx{Writes: []log.Write{{Map: "public:scitt.policy", Key: k, Value: []byte("g")}}}),
		badApp:   log.Proposal{Type: log.TxApp, Entry: sha256.Sum256([]byte("not an app tx")), Body: []byte("not an app tx")},
	}
}

// entries is the raft log the tests apply: raft's own entry, a second
// genesis, duplicates within one entry and across entries, and each
// invalid transaction between valid ones.
func (x applyTxs) entries(t *testing.T) []Entry {
	return []Entry{
		entryOf(t, 1, 1, x.genesis),
		{Index: 2, Term: 2},
		entryOf(t, 3, 2, x.genesis, x.regA, x.regA, x.badWrites, x.regB, x.writes, x.reserved),
		entryOf(t, 4, 2, x.app, x.governed, x.conflict, x.badApp, x.regA),
	}
}

// await registers a waiter as Register and submit do, without a sequencer.
func await(l *Ledger, key [32]byte) *pendingReg {
	w := &pendingReg{done: make(chan struct{})}
	l.mu.Lock()
	l.pending[key] = w
	l.mu.Unlock()
	return w
}

// checkpointAt is a checkpoint transaction for this ledger's tree at size,
// or for another tree if root is given.
func checkpointAt(t *testing.T, l *Ledger, size uint64, root ...[32]byte) log.Proposal {
	t.Helper()
	cp := &log.Checkpoint{TreeSize: size}
	if len(root) > 0 {
		cp.Root = root[0]
	} else {
		r, err := l.tree.Root(int64(size))
		if err != nil {
			t.Fatal(err)
		}
		cp.Root = r
	}
	body, err := log.MarshalCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	return log.Proposal{Type: log.TxCheckpoint, Body: body}
}

// image is everything Apply writes, in a form two ledgers can be compared
// by: the state, the applied position, every record, the tree's root, the
// checkpoint index and the key-value maps the transactions write.
func image(t *testing.T, l *Ledger) string {
	t.Helper()
	s := l.State()
	index, term, err := l.st.AppliedPosition()
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("state %+v applied %d/%d\n", s, index, term)
	for seq := uint64(1); seq <= s.Size; seq++ {
		rec, err := l.st.Record(seq)
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		out += fmt.Sprintf("record %d %x\n", seq, rec)
	}
	root, err := l.tree.Root(int64(s.Size))
	if err != nil {
		t.Fatal(err)
	}
	out += fmt.Sprintf("root %x\n", root)
	if s.LastCheckpointSize > 0 {
		size, seq, err := l.st.CheckpointCovering(s.LastCheckpointSize)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("checkpoint %d at %d\n", size, seq)
	}
	for _, m := range []string{"public:test.a", "private:test.b", "public:charter.nodes", "public:scitt.policy"} {
		if err := l.ScanKV(m, func(k, v []byte) error { out += fmt.Sprintf("%s %q=%q\n", m, k, v); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestApplyEachTransactionType applies every type and every way of
// treating one, and checks positions, skips, waiters' answers, metrics
// and what is written: what every node must agree on.
func TestApplyEachTransactionType(t *testing.T) {
	l := applyLedger(t)
	x := newApplyTxs(t)
	waiters := map[string]*pendingReg{}
	for name, p := range map[string]log.Proposal{
		"regA": x.regA, "regB": x.regB, "writes": x.writes, "badWrites": x.badWrites, "reserved": x.reserved,
		"app": x.app, "conflict": x.conflict, "governed": x.governed, "badApp": x.badApp,
	} {
		waiters[name] = await(l, p.Entry)
	}
	applied := l.applied
	if err := l.Apply(x.entries(t), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-applied:
	default:
		t.Error("Apply did not signal that it applied")
	}
	want := []struct {
		typ  log.TxType
		view uint64
	}{{log.TxGenesis, 1}, {log.TxRegistration, 2}, {log.TxRegistration, 2}, {log.TxWrites, 2}, {log.TxApp, 2}}
	for i, w := range want {
		rec, err := l.Record(uint64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != w.typ || rec.View != w.view {
			t.Errorf("seqno %d: type %v view %d, want %v view %d", i+1, rec.Type, rec.View, w.typ, w.view)
		}
	}
	if s := l.State(); s != (State{Size: 5, LastContentSeqno: 5}) {
		t.Fatalf("state %+v", s)
	}
	for name, w := range map[string]struct {
		seqno uint64
		err   error
	}{
		"regA": {2, nil}, "regB": {3, nil}, "writes": {4, nil}, "app": {5, nil},
		"badWrites": {0, ErrInvalid}, "reserved": {0, ErrInvalid}, "governed": {0, ErrInvalid}, "badApp": {0, ErrInvalid},
		"conflict": {0, ErrConflict},
	} {
		p := waiters[name]
		select {
		case <-p.done:
		default:
			t.Errorf("%s: waiter not answered", name)
			continue
		}
		if p.txid.Seqno != w.seqno || !errors.Is(p.err, w.err) || (w.err == nil && p.txid.View != 2) {
			t.Errorf("%s: answered %v, %v; want seqno %d, %v", name, p.txid, p.err, w.seqno, w.err)
		}
	}
	if l.Pending(x.regA.Entry) {
		t.Error("an answered waiter is still pending")
	}
	for _, e := range []log.Proposal{x.regA, x.regB} {
		if _, err := l.LookupEntry(e.Entry); err != nil {
			t.Errorf("registration not indexed: %v", err)
		}
	}
	if v, err := l.GetKV("private:test.b", []byte("k")); err != nil || string(v) != "a" {
		t.Errorf("app's write: %q, %v", v, err)
	}
	if got := l.AppConflicts(); got != 1 {
		t.Errorf("%v app conflicts counted, want 1", got)
	}
	if l.WritesVersion() == 0 {
		t.Error("the writes version did not change")
	}

	// Checkpoints: one for the tree, then one not newer, one beyond the
	// ledger and one for another tree, which every node skips.
	covered := l.covered
	if err := l.Apply([]Entry{entryOf(t, 5, 3, checkpointAt(t, l, 5), checkpointAt(t, l, 3), checkpointAt(t, l, 5, [32]byte{1}), checkpointAt(t, l, 9, [32]byte{2}))}, nil); err != nil {
		t.Fatal(err)
	}
	if s := l.State(); s != (State{Size: 6, LastCheckpointSize: 5, LastCheckpointSeqno: 6, LastContentSeqno: 5}) {
		t.Fatalf("after the checkpoints: state %+v", s)
	}
	select {
	case <-covered:
	default:
		t.Error("Apply did not signal the checkpoint")
	}
	if size, seq, err := l.st.CheckpointCovering(5); err != nil || size != 5 || seq != 6 {
		t.Errorf("checkpoint index: %d at %d, %v", size, seq, err)
	}
}

// TestApplyBatchingDoesNotMatter: how raft's committed entries are split
// into Apply calls changes nothing that is written (a duplicate or a
// changed read is found in the same call as in the store).
func TestApplyBatchingDoesNotMatter(t *testing.T) {
	x := newApplyTxs(t)
	entries := x.entries(t)
	whole := applyLedger(t)
	if err := whole.Apply(entries, nil); err != nil {
		t.Fatal(err)
	}
	single := applyLedger(t)
	for _, e := range entries {
		if err := single.Apply([]Entry{e}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := image(t, whole), image(t, single); a != b {
		t.Fatalf("applied in one call:\n%s\none entry a call:\n%s", a, b)
	}
}

// TestApplyFailureLeavesNoTrace: an Apply that fails, at any point, leaves
// the store, the in-memory tree, the state readers see and the waiters as
// they were, so that applying the same entries again (as raft does after a
// restart) gives what applying them once gives.
func TestApplyFailureLeavesNoTrace(t *testing.T) {
	x := newApplyTxs(t)
	entries := x.entries(t)
	prefix, rest := entries[:1], entries[1:]
	failAlso := errors.New("also failed")
	corrupt := Entry{Index: 5, Term: 2, Data: []byte{0xff}}
	unknown := entryOf(t, 5, 2, log.Proposal{Type: 0x7f, Body: []byte("?")})
	for _, c := range []struct {
		name    string
		entries []Entry
		also    func(*store.Batch) error
		want    error
	}{
		{"also fails", rest, func(*store.Batch) error { return failAlso }, failAlso},
		{"undecodable entry", append(slices.Clone(rest), corrupt), nil, nil},
		{"unknown transaction type", append(slices.Clone(rest), unknown), nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := applyLedger(t)
			if err := ref.Apply(entries, nil); err != nil {
				t.Fatal(err)
			}
			l := applyLedger(t)
			if err := l.Apply(prefix, nil); err != nil {
				t.Fatal(err)
			}
			before := image(t, l)
			version := l.WritesVersion()
			w := await(l, x.regA.Entry)
			err := l.Apply(c.entries, c.also)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Apply: %v, want %v", err, c.want)
			}
			if got := l.tree.Size(); got != 1 {
				t.Fatalf("the tree kept %d leaves", got)
			}
			if after := image(t, l); after != before {
				t.Fatalf("a failed Apply changed the ledger:\n%s\nbefore:\n%s", after, before)
			}
			if l.WritesVersion() != version {
				t.Error("a failed Apply changed the writes version")
			}
			if _, err := l.GetKV("private:test.b", []byte("k")); !errors.Is(err, ErrNotFound) {
				t.Errorf("a failed Apply's write is read: %v", err)
			}
			select {
			case <-w.done:
				t.Fatal("a failed Apply answered a waiter")
			default:
			}
			if err := l.Apply(rest, nil); err != nil {
				t.Fatal(err)
			}
			if a, b := image(t, l), image(t, ref); a != b {
				t.Fatalf("applied again after the failure:\n%s\napplied once:\n%s", a, b)
			}
			if w.txid.Seqno != 2 {
				t.Errorf("waiter answered %v, want seqno 2", w.txid)
			}
		})
	}
}

// BenchmarkApply measures Apply alone, without raft or fsync: one raft
// entry of 256 new registrations per op, into a growing ledger.
func BenchmarkApply(b *testing.B) {
	l := applyLedger(b)
	body := make([]byte, 1024)
	entries := make([]Entry, b.N)
	for i := range entries {
		props := make([]log.Proposal, 256)
		for j := range props {
			props[j] = log.Proposal{Type: log.TxRegistration, Entry: sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, j)), Body: body}
		}
		entries[i] = entryOf(b, uint64(i+1), 1, props...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range entries {
		if err := l.Apply(entries[i:i+1], nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyStubsDoNotMatter: with ledger files attached, apply stores
// each registration's record as a stub into its raft entry
// (store/bodies.go), and what a reader gets back is what a ledger without
// files wrote, byte for byte, whether the body comes from the raft entry
// or, once synced, from the files.
func TestApplyStubsDoNotMatter(t *testing.T) {
	x := newApplyTxs(t)
	entries := x.entries(t)
	plain := applyLedger(t)
	if err := plain.Apply(entries, nil); err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := filepath.Join(t.TempDir(), "ledger")
	w, err := ledgerfiles.OpenWriter(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := st.AttachFiles(ledgerfiles.NewReader(dir), w.Synced()); err != nil {
		t.Fatal(err)
	}
	rl, err := st.RaftLog()
	if err != nil {
		t.Fatal(err)
	}
	var persisted []*pb.Entry
	for _, e := range entries {
		persisted = append(persisted, &pb.Entry{Index: proto.Uint64(e.Index), Term: proto.Uint64(e.Term), Data: e.Data})
	}
	if err := rl.SaveRaft(&pb.HardState{Term: proto.Uint64(2), Commit: proto.Uint64(4)}, persisted, true); err != nil {
		t.Fatal(err)
	}
	stubbed, err := Open(st, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := stubbed.Apply(entries, nil); err != nil {
		t.Fatal(err)
	}
	stubs := 0
	for seqno := uint64(1); seqno <= stubbed.State().Size; seqno++ {
		v, err := st.Get(binary.BigEndian.AppendUint64([]byte{0x02, 't'}, seqno))
		if err != nil {
			t.Fatal(err)
		}
		if v[0] == 0xff {
			stubs++
		}
	}
	if stubs != 2 { // regA and regB; the duplicates append nothing
		t.Fatalf("%d records stored as stubs, want the 2 registrations'", stubs)
	}
	want := image(t, plain)
	if got := image(t, stubbed); got != want {
		t.Fatalf("with stubs, bodies from raft entries:\n%s\nwithout:\n%s", got, want)
	}
	// Synced to the files, and the raft log compacted: from the files.
	if err := stubbed.ScanRecords(1, stubbed.State().Size, w.Append); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	st.FilesSynced(w.Synced())
	if done, err := rl.Compact(4, &pb.ConfState{Voters: []uint64{1}}); err != nil || done != 4 {
		t.Fatalf("Compact(4) = %d, %v", done, err)
	}
	if got := image(t, stubbed); got != want {
		t.Fatalf("with stubs, bodies from the files:\n%s\nwithout:\n%s", got, want)
	}
}
