package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// fakeRaft is a Proposer whose leadership the test sets, and whose
// proposals it commits (or not) by calling Apply itself.
type fakeRaft struct {
	mu       sync.Mutex
	leader   bool
	term     uint64
	proposed [][]byte
	// err, if set, is what Propose returns (after recording the data).
	err error
}

func (f *fakeRaft) Propose(ctx context.Context, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposed = append(f.proposed, data)
	return f.err
}

func (f *fakeRaft) Leader() (bool, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader, f.term
}

func (f *fakeRaft) set(leader bool, term uint64) {
	f.mu.Lock()
	f.leader, f.term = leader, term
	f.mu.Unlock()
}

func (f *fakeRaft) last(t *testing.T) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.proposed)
		var d []byte
		if n > 0 {
			d = f.proposed[n-1]
		}
		f.mu.Unlock()
		if d != nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing proposed within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sequencerLedger opens a ledger over a fresh store and runs its sequencer
// with f as the consensus layer.
func sequencerLedger(t *testing.T, f *fakeRaft) *ledger.Ledger {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(st, ledger.Config{CheckpointInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.RunSequencer(ctx, f) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return l
}

// TestSequencerOutcomes: which answer a registration gets for each fate of
// its proposal. "Not accepted" (ErrDropped) only when the node knows it
// will not commit; ErrOutcomeUnknown when it cannot tell; the receipt's
// transaction when it committed, even after leadership moved.
func TestSequencerOutcomes(t *testing.T) {
	// noopAt is an applied entry of term: a later leader's first entry.
	noopAt := func(index, term uint64) []ledger.Entry {
		return []ledger.Entry{{Index: index, Term: term}}
	}
	cases := []struct {
		name string
		// proposeErr is what Propose returns.
		proposeErr error
		// after runs once the registration is proposed (in term 2, while
		// leading); data is the raft entry proposed.
		after func(t *testing.T, f *fakeRaft, l *ledger.Ledger, data []byte)
		want  error // nil: committed
	}{
		{
			name:       "raft refuses it",
			proposeErr: fmt.Errorf("%w: raft: proposal dropped", ledger.ErrDropped),
			after:      func(*testing.T, *fakeRaft, *ledger.Ledger, []byte) {},
			want:       ledger.ErrDropped,
		},
		{
			name: "leadership lost, a later leader's entry applied without it",
			after: func(t *testing.T, f *fakeRaft, l *ledger.Ledger, _ []byte) {
				f.set(false, 3)
				if err := l.Apply(noopAt(10, 3), nil); err != nil {
					t.Fatal(err)
				}
			},
			want: ledger.ErrDropped,
		},
		{
			name: "leadership lost, nothing learned",
			after: func(t *testing.T, f *fakeRaft, _ *ledger.Ledger, _ []byte) {
				f.set(false, 2)
			},
			want: ledger.ErrOutcomeUnknown,
		},
		{
			name: "leadership lost, then it commits under the next leader",
			after: func(t *testing.T, f *fakeRaft, l *ledger.Ledger, data []byte) {
				f.set(false, 3)
				time.Sleep(150 * time.Millisecond) // a sweep sees it orphaned
				if err := l.Apply([]ledger.Entry{{Index: 9, Term: 2, Data: data}, {Index: 10, Term: 3}}, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "leadership moved to another term while this node leads",
			after: func(t *testing.T, f *fakeRaft, _ *ledger.Ledger, _ []byte) {
				f.set(true, 4)
			},
			want: ledger.ErrOutcomeUnknown,
		},
		{
			name:       "propose ended without an answer, still leading",
			proposeErr: fmt.Errorf("%w: context deadline exceeded", ledger.ErrOutcomeUnknown),
			after:      func(*testing.T, *fakeRaft, *ledger.Ledger, []byte) {},
			want:       ledger.ErrOutcomeUnknown,
		},
		{
			name:       "propose ended without an answer, and it commits",
			proposeErr: fmt.Errorf("%w: leadership lost while proposing", ledger.ErrOutcomeUnknown),
			after: func(t *testing.T, f *fakeRaft, l *ledger.Ledger, data []byte) {
				if err := l.Apply([]ledger.Entry{{Index: 9, Term: 2, Data: data}}, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRaft{leader: true, term: 2, err: tc.proposeErr}
			l := sequencerLedger(t, f)
			l.SetOrphanGrace(300 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			entry := entryFor(1)
			type result struct {
				txid log.TxID
				err  error
			}
			res := make(chan result, 1)
			go func() {
				txid, err := l.Register(ctx, entry, []byte("statement"), [32]byte{})
				res <- result{txid, err}
			}()
			data := f.last(t)
			tc.after(t, f, l, data)
			r := <-res
			switch {
			case tc.want == nil && r.err != nil:
				t.Fatalf("Register: %v, want the committed transaction", r.err)
			case tc.want == nil:
				if got, err := l.LookupEntry(entry); err != nil || got != r.txid {
					t.Fatalf("Register returned %v; the ledger has %v (%v)", r.txid, got, err)
				}
			case !errors.Is(r.err, tc.want):
				t.Fatalf("Register: %v, want %v", r.err, tc.want)
			}
			if errors.Is(r.err, ledger.ErrOutcomeUnknown) && errors.Is(r.err, ledger.ErrDropped) {
				t.Fatalf("Register: %v is both unknown and not accepted", r.err)
			}
			if l.Pending(entry) {
				t.Fatal("still pending after Register returned")
			}
		})
	}
}
