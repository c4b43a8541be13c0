// Package ledgertest runs a one-node ledger for tests, the way a node runs
// it: a store, a one-voter raft group, the sequencer and the checkpointer.
package ledgertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// RootSigner makes checkpoints without signatures: the ledger neither
// reads nor checks them, and cose has its own tests.
type RootSigner struct{}

func (RootSigner) SignTreeHead(size uint64, root [32]byte, at time.Time) (*log.Checkpoint, error) {
	return &log.Checkpoint{TreeSize: size, Root: root, IssuedAt: at.Unix()}, nil
}

// Node is a running one-node ledger.
type Node struct {
	Store  *store.Store
	Ledger *ledger.Ledger
	Raft   *replication.Node

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start opens (or reopens) the store in dir, runs the ledger on it with
// cfg, and returns once the node leads. It stops at the end of the test
// if Stop was not called before.
func Start(t testing.TB, dir string, cfg ledger.Config) *Node {
	t.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(st, cfg, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	r, err := replication.Start(replication.Config{ID: 1, Bootstrap: map[uint64]string{1: ""}, TickInterval: 10 * time.Millisecond}, st, l, nil, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Store: st, Ledger: l, Raft: r, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	go func() { defer wg.Done(); _ = l.RunSequencer(ctx, r) }()
	go func() { defer wg.Done(); _ = l.RunCheckpointer(ctx, r, RootSigner{}, nil) }()
	go func() { wg.Wait(); close(n.done) }()
	t.Cleanup(func() { n.Stop(t) })
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := r.Leader(); !ok; ok, _ = r.Leader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// Stop stops the node and closes its store; later calls do nothing.
func (n *Node) Stop(t testing.TB) {
	n.once.Do(func() {
		n.cancel()
		<-n.done
		if err := n.Store.Close(); err != nil {
			t.Error(err)
		}
	})
}
