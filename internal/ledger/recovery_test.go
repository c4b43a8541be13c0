package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/log"
)

// source is a ledger with a genesis, a registration, a write set and a
// checkpoint, applied as consensus would; raws are its stored records.
func source(t *testing.T) (*Ledger, [][]byte) {
	t.Helper()
	l := applyLedger(t)
	txs := newApplyTxs(t)
	if err := l.Apply([]Entry{entryOf(t, 1, 1, txs.genesis, txs.regA, txs.writes)}, nil); err != nil {
		t.Fatal(err)
	}
	root, err := l.Tree().Root(3)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := log.MarshalCheckpoint(&log.Checkpoint{TreeSize: 3, Root: root, Protected: []byte{0xa0}, Signature: []byte{1}})
	if err := l.Apply([]Entry{entryOf(t, 2, 1, log.Proposal{Type: log.TxCheckpoint, Body: cp})}, nil); err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	if err := l.st.ScanRecords(1, l.State().Size, func(_ uint64, raw []byte) error {
		raws = append(raws, bytes.Clone(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(raws) != 4 {
		t.Fatalf("source ledger has %d records", len(raws))
	}
	return l, raws
}

// Import continues a ledger verbatim: the same records, tree, state,
// registration index and maps as the ledger that made them; records out
// of order or a checkpoint of another tree are refused.
func TestImport(t *testing.T) {
	src, raws := source(t)
	dst := applyLedger(t)
	if err := dst.Import(raws[:2], false); err != nil {
		t.Fatal(err)
	}
	if err := dst.Import(raws[2:], true); err != nil {
		t.Fatal(err)
	}
	if dst.State() != src.State() {
		t.Fatalf("state %+v, the source's %+v", dst.State(), src.State())
	}
	for i, raw := range raws {
		got, err := dst.st.Record(uint64(i + 1))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("record %d differs: %v", i+1, err)
		}
	}
	r1, _ := src.Tree().Root(4)
	r2, _ := dst.Tree().Root(4)
	if r1 != r2 {
		t.Fatal("the imported tree's root differs")
	}
	txs := newApplyTxs(t)
	if _, err := dst.LookupEntry(txs.regA.Entry); err != nil {
		t.Fatalf("the imported registration is not indexed: %v", err)
	}
	a, errA := src.GetKV("public:test.a", []byte("k"))
	b, errB := dst.GetKV("public:test.a", []byte("k"))
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Fatalf("maps differ: %q %v, %q %v", a, errA, b, errB)
	}

	gap := applyLedger(t)
	if err := gap.Import([][]byte{raws[0], raws[2]}, false); !errors.Is(err, ErrImport) || !strings.Contains(err.Error(), "where 2 belongs") {
		t.Errorf("a gap: %v", err)
	}
	forged := applyLedger(t)
	rec, _ := log.UnmarshalRecord(raws[3])
	cp, _ := log.UnmarshalCheckpoint(rec.Body)
	cp.Root[0] ^= 1
	rec.Body, _ = log.MarshalCheckpoint(cp)
	bad, _ := log.MarshalRecord(rec)
	if err := forged.Import([][]byte{raws[0], raws[1], raws[2], bad}, false); !errors.Is(err, ErrImport) || !strings.Contains(err.Error(), "not this tree's") {
		t.Errorf("a checkpoint of another tree: %v", err)
	}
	if forged.State().Size != 0 {
		t.Errorf("a refused import left %d transactions", forged.State().Size)
	}
}

// A recovery transaction applies only right after the ledger it names,
// and is then listed by Recoveries.
func TestApplyRecovery(t *testing.T) {
	_, raws := source(t)
	l := applyLedger(t)
	if err := l.Import(raws, true); err != nil {
		t.Fatal(err)
	}
	body := func(size uint64) log.Proposal {
		b, err := log.MarshalRecovery(&log.Recovery{PreviousServiceCert: []byte{1}, ServiceCert: []byte{2}, NoteVerifierKey: "k", Endorsement: []byte{3},
			PreviousSize: size, Writes: []log.Write{{Map: "public:ccf.gov.service.info", Key: []byte("service"), Value: []byte(`{"status":"Recovering"}`)}}})
		if err != nil {
			t.Fatal(err)
		}
		return log.Proposal{Type: log.TxRecovery, Entry: sha256.Sum256(b), Body: b}
	}
	stale := body(3)
	if err := l.Apply([]Entry{entryOf(t, 1, 1, stale)}, nil); err != nil {
		t.Fatal(err)
	}
	if l.State().Size != 4 {
		t.Fatalf("a recovery of another ledger size was appended: size %d", l.State().Size)
	}
	if err := l.Apply([]Entry{entryOf(t, 2, 1, body(4))}, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := l.Recoveries()
	if err != nil || len(recs) != 1 || recs[0].Seqno != 5 || l.State().Size != 5 {
		t.Fatalf("recoveries %+v, %v; size %d", recs, err, l.State().Size)
	}
	if v, err := l.GetKV("public:ccf.gov.service.info", []byte("service")); err != nil || !strings.Contains(string(v), "Recovering") {
		t.Fatalf("the recovery's writes: %q %v", v, err)
	}
	rec, _ := l.Record(5)
	if rec.Type != log.TxRecovery || rec.Entry != log.ComputeEntry(log.TxRecovery, 1, 5, rec.Body) {
		t.Fatalf("record 5: %+v", rec)
	}
}
