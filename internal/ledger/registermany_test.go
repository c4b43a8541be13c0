package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// TestRegisterManyOneProposal: RegisterMany queues a call's new
// registrations together, so a sequencer that starts after them proposes
// them as one raft entry; duplicates within the call join one registration,
// a statement already in the ledger answers its id, and the answers are in
// the call's order.
func TestRegisterManyOneProposal(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := ledger.Open(st, ledger.Config{CheckpointInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRaft{leader: true, term: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// One registration committed before the call.
	seqCtx, stopSeq := context.WithCancel(ctx)
	seqDone := make(chan struct{})
	go func() { defer close(seqDone); _ = l.RunSequencer(seqCtx, f) }()
	first := make(chan log.TxID, 1)
	go func() {
		txid, err := l.Register(ctx, entryFor(0), []byte("s0"), [32]byte{})
		if err != nil {
			t.Error(err)
		}
		first <- txid
	}()
	if err := l.Apply([]ledger.Entry{{Index: 1, Term: 2, Data: f.last(t)}}, nil); err != nil {
		t.Fatal(err)
	}
	existing := <-first
	stopSeq()
	<-seqDone
	f.mu.Lock()
	f.proposed = nil
	f.mu.Unlock()

	const n = 200
	regs := make([]ledger.Registration, 0, n+2)
	for i := 1; i <= n; i++ {
		regs = append(regs, ledger.Registration{Entry: entryFor(i), Statement: []byte{byte(i), byte(i >> 8)}})
	}
	// A duplicate of the call's own 7th, and the committed one.
	regs = append(regs, regs[6], ledger.Registration{Entry: entryFor(0), Statement: []byte("s0")})
	type answer struct {
		txids []log.TxID
		errs  []error
	}
	res := make(chan answer, 1)
	go func() {
		txids, errs := l.RegisterMany(ctx, regs)
		res <- answer{txids, errs}
	}()
	// The sequencer starts only once every new registration is queued.
	deadline := time.Now().Add(5 * time.Second)
	for !l.Pending(entryFor(n)) {
		if time.Now().After(deadline) {
			t.Fatal("the registrations were not queued within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	seqCtx, stopSeq = context.WithCancel(ctx)
	seqDone = make(chan struct{})
	go func() { defer close(seqDone); _ = l.RunSequencer(seqCtx, f) }()
	defer func() { stopSeq(); <-seqDone }()
	data := f.last(t)
	b, err := log.UnmarshalBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Proposals) != n {
		t.Fatalf("the raft entry holds %d proposals, want all %d new ones (the duplicate joined, the committed one answered)", len(b.Proposals), n)
	}
	if err := l.Apply([]ledger.Entry{{Index: 2, Term: 2, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	a := <-res
	for i, err := range a.errs {
		if err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	for i := range n {
		rec, err := l.Record(a.txids[i].Seqno)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Entry != regs[i].Entry {
			t.Fatalf("answer %d names seqno %d, whose entry is another registration's", i, a.txids[i].Seqno)
		}
	}
	if a.txids[n] != a.txids[6] {
		t.Fatalf("the duplicate got %v, its original %v", a.txids[n], a.txids[6])
	}
	if a.txids[n+1] != existing {
		t.Fatalf("the committed statement got %v, want its existing %v", a.txids[n+1], existing)
	}
	f.mu.Lock()
	proposals := len(f.proposed)
	f.mu.Unlock()
	if proposals != 1 {
		t.Fatalf("%d raft entries proposed, want 1", proposals)
	}
}

// TestRegisterManyOverloaded: a queue with room for some of the call's
// registrations keeps those and refuses the rest with ErrOverloaded; a
// context that ends answers the kept ones with its error (they stay queued,
// as Register's do).
func TestRegisterManyOverloaded(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := ledger.Open(st, ledger.Config{QueueSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	regs := []ledger.Registration{{Entry: entryFor(1)}, {Entry: entryFor(2)}, {Entry: entryFor(3)}, {Entry: entryFor(4)}}
	_, errs := l.RegisterMany(ctx, regs)
	want := []error{context.DeadlineExceeded, context.DeadlineExceeded, ledger.ErrOverloaded, ledger.ErrOverloaded}
	for i, err := range errs {
		if !errors.Is(err, want[i]) {
			t.Fatalf("registration %d: %v, want %v", i, err, want[i])
		}
	}
	if !l.Pending(entryFor(1)) || l.Pending(entryFor(3)) {
		t.Fatal("the queued registrations must stay pending and the refused ones must not")
	}
}
