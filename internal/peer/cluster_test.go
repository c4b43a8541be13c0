package peer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/replication/replicationtest"
	"github.com/charterlog/charter/internal/store"
)

// This file is a harness for raft networks of real Nodes in one process:
// real Pebble stores, the real HTTPTransport over TLS test servers, and a
// state machine that stores each entry as a ledger record (so snapshot
// images carry the whole history, as the ledger's do).

// events counts log messages by text across a network's nodes.
type events struct {
	mu sync.Mutex
	n  map[string]int
	// snapshotBytes sums the bytes attribute of "sent snapshot";
	// snapshotFrom lists their ledger_from.
	snapshotBytes int64
	snapshotFrom  []uint64
}

func (e *events) count(msg string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[msg]
}

type eventHandler struct {
	ev   *events
	next slog.Handler
}

func (h eventHandler) Enabled(ctx context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h eventHandler) Handle(ctx context.Context, r slog.Record) error {
	h.ev.mu.Lock()
	h.ev.n[r.Message]++
	if r.Message == "sent snapshot" {
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "bytes":
				h.ev.snapshotBytes += a.Value.Int64()
			case "ledger_from":
				h.ev.snapshotFrom = append(h.ev.snapshotFrom, a.Value.Uint64())
			}
			return true
		})
	}
	h.ev.mu.Unlock()
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}
func (h eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.next != nil {
		return eventHandler{h.ev, h.next.WithAttrs(as)}
	}
	return h
}
func (h eventHandler) WithGroup(g string) slog.Handler {
	if h.next != nil {
		return eventHandler{h.ev, h.next.WithGroup(g)}
	}
	return h
}

// testNet is a network of n voters, ids 1..n.
type testNet struct {
	t      testing.TB
	dir    string
	cfg    replication.Config // template: ID, Bootstrap, Peers and SnapshotDir are set per node
	srvs   map[uint64]*httptest.Server
	urls   map[uint64]string
	nodes  map[uint64]*testNode
	live   map[uint64]*atomic.Pointer[replication.Node]
	ev     *events
	logger *slog.Logger
	// beforeSnapshot, if set, runs when a snapshot reaches node id's
	// server, before the node reads it.
	beforeSnapshot atomic.Pointer[func(to uint64)]
	// wholeSnapshots makes followers refuse to say what ledger prefix
	// they hold, so leaders send whole images (as before deltas).
	wholeSnapshots atomic.Bool
}

type testNode struct {
	id     uint64
	dir    string
	st     *store.Store
	n      *replication.Node
	tr     *HTTPTransport
	cancel context.CancelFunc
	done   chan error
}

// fromHeader names the sending node, which a real node learns from the
// peer's TLS certificate.
const fromHeader = "Test-From"

type fromTransport struct {
	base http.RoundTripper
	from uint64
}

func (f fromTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(fromHeader, strconv.FormatUint(f.from, 10))
	return f.base.RoundTrip(r)
}

func newTestNet(t testing.TB, n int, cfg replication.Config) *testNet {
	t.Helper()
	tn := &testNet{t: t, dir: t.TempDir(), cfg: cfg, srvs: map[uint64]*httptest.Server{}, urls: map[uint64]string{},
		nodes: map[uint64]*testNode{}, ev: &events{n: map[string]int{}}}
	tn.logger = slog.New(eventHandler{ev: tn.ev})
	live := map[uint64]*atomic.Pointer[replication.Node]{}
	for i := 1; i <= n; i++ {
		id := uint64(i)
		cur := &atomic.Pointer[replication.Node]{}
		live[id] = cur
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			node := cur.Load()
			from, _ := strconv.ParseUint(r.Header.Get(fromHeader), 10, 64)
			if node == nil {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			var err error
			switch r.URL.Path {
			case PathRaft:
				err = ReceiveRaft(node, r, replication.Sender{ID: from, Voter: true})
			case PathSnapshotBase:
				if tn.wholeSnapshots.Load() {
					http.NotFound(w, r) // as a node before delta snapshots
					return
				}
				body, err := node.SnapshotBase(replication.Sender{ID: from, Voter: true})
				if err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
				_, _ = w.Write(body)
				return
			case PathSnapshot:
				if f := tn.beforeSnapshot.Load(); f != nil {
					(*f)(id)
				}
				err = ReceiveSnapshot(node, r, replication.Sender{ID: from, Voter: true})
			default:
				http.NotFound(w, r)
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		tn.srvs[id] = srv
		tn.urls[id] = srv.URL
	}
	tn.live = live
	for id := range tn.srvs {
		tn.start(id, true)
	}
	t.Cleanup(func() {
		for id := range tn.nodes {
			tn.stop(id)
		}
	})
	return tn
}

// start starts node id over its store (created on the first start).
func (tn *testNet) start(id uint64, bootstrap bool) {
	t := tn.t
	t.Helper()
	dir := filepath.Join(tn.dir, fmt.Sprint(id))
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tn.cfg
	cfg.ID = id
	cfg.Peers = replication.NewPeerTable(tn.urls)
	cfg.SnapshotDir = filepath.Join(dir, "snapshots")
	if bootstrap {
		cfg.Bootstrap = tn.urls
	}
	clientFor := func(to uint64) *http.Client {
		c := tn.srvs[to].Client()
		return &http.Client{Transport: fromTransport{base: c.Transport, from: id}}
	}
	tr := NewHTTPTransport(id, tn.urls[id], cfg.Peers, clientFor, st, tn.logger)
	sm := replicationtest.NewRecordSM(st)
	if err := sm.Restore(); err != nil {
		t.Fatal(err)
	}
	n, err := replication.Start(cfg, st, sm, tr, tn.logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tnode := &testNode{id: id, dir: dir, st: st, n: n, tr: tr, cancel: cancel, done: make(chan error, 1)}
	go func() { tnode.done <- n.Run(ctx) }()
	tn.nodes[id] = tnode
	tn.live[id].Store(n)
}

// stop stops node id: its server answers 503 from then on.
func (tn *testNet) stop(id uint64) {
	tn.t.Helper()
	tnode := tn.nodes[id]
	tn.live[id].Store(nil)
	tnode.cancel()
	if err := <-tnode.done; err != nil {
		tn.t.Errorf("node %d: %v", id, err)
	}
	tnode.tr.Close()
	if err := tnode.st.Close(); err != nil {
		tn.t.Errorf("node %d: closing its store: %v", id, err)
	}
	delete(tn.nodes, id)
}

// waitLedger waits until every running node's ledger holds size
// transactions. (propose's raft index is a lower bound: a proposal may
// not be in the leader's log yet when it returns.)
func (tn *testNet) waitLedger(within time.Duration, size uint64) {
	tn.t.Helper()
	tn.waitFor(within, fmt.Sprintf("every running node's ledger to reach %d", size), func() bool {
		for _, tnode := range tn.nodes {
			if b, err := tnode.st.LedgerBase(); err != nil || b.Size < size {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds or within passes.
func (tn *testNet) waitFor(within time.Duration, what string, cond func() bool) {
	tn.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tn.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader waits for a node that says it leads and returns its id.
func (tn *testNet) leader() uint64 {
	tn.t.Helper()
	var id uint64
	tn.waitFor(10*time.Second, "a leader", func() bool {
		for i, tnode := range tn.nodes {
			if ok, _ := tnode.n.Leader(); ok {
				id = i
				return true
			}
		}
		return false
	})
	return id
}

// propose proposes k entries of about size bytes through the leader, waits
// until the leader has applied them, and returns its applied index.
func (tn *testNet) propose(k, size int) uint64 {
	tn.t.Helper()
	lead := tn.nodes[tn.leader()]
	before, err := lead.st.LedgerBase()
	if err != nil {
		tn.t.Fatal(err)
	}
	pad := make([]byte, size)
	for i := range k {
		data := fmt.Appendf(nil, "entry %d ", i)
		data = append(data, pad[:max(0, size-len(data))]...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := lead.n.Propose(ctx, data)
		cancel()
		if err != nil {
			tn.t.Fatalf("proposing: %v", err)
		}
	}
	// Propose returns once raft has the entry, before the leader has even
	// persisted it: wait until the leader has applied all k, so that the
	// index returned covers them.
	tn.waitFor(30*time.Second, fmt.Sprintf("the leader to apply %d proposals", k), func() bool {
		b, err := lead.st.LedgerBase()
		return err == nil && b.Size >= before.Size+uint64(k)
	})
	return lead.n.Applied()
}

// waitApplied waits until every running node has applied index.
func (tn *testNet) waitApplied(within time.Duration, index uint64) {
	tn.t.Helper()
	tn.waitFor(within, fmt.Sprintf("every running node to apply %d", index), func() bool {
		for _, tnode := range tn.nodes {
			if tnode.n.Applied() < index {
				return false
			}
		}
		return true
	})
}
