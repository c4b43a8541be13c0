package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/charterlog/charter/cose"
)

// history is every registration the clients of a cluster test made.
type history struct {
	mu  sync.Mutex
	ops []*outcome
}

func (h *history) add(o *outcome) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// acked returns the registrations that got a receipt.
func (h *history) acked() []*outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*outcome
	for _, o := range h.ops {
		if o.Err == nil && o.Receipt != nil {
			out = append(out, o)
		}
	}
	return out
}

// failed returns the registrations that ended in an error.
func (h *history) failed() []*outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*outcome
	for _, o := range h.ops {
		if o.Err != nil {
			out = append(out, o)
		}
	}
	return out
}

// attempts returns every POST of every registration.
func (h *history) attempts() []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []attempt
	for _, o := range h.ops {
		out = append(out, o.Attempts...)
	}
	return out
}

// leafOrderModel is the log as a client sees it: registering a new
// statement yields a leaf index beyond every index yielded before. State is
// the highest index seen (-1 before any). A history is linearizable under it
// iff whenever A's receipt came back before B was sent, index(A) < index(B).
var leafOrderModel = porcupine.Model{
	Init: func() any { return int64(-1) },
	Step: func(state, input, output any) (bool, any) {
		i := int64(output.(uint64))
		if i > state.(int64) {
			return true, i
		}
		return false, state
	},
	Hash: func(state any) uint64 { return uint64(state.(int64)) },
	DescribeOperation: func(input, output any) string {
		return fmt.Sprintf("register(%v) -> %d", input, output)
	},
}

// checkLinearizable checks the acknowledged registrations against
// leafOrderModel. Registrations without a receipt are left out: their
// outcome is unknown, and whatever index they got (if any) constrains no
// acknowledged one under this model.
func checkLinearizable(t *testing.T, acked []*outcome) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatal("history check: no acknowledged registrations")
	}
	ops := make([]porcupine.Operation, 0, len(acked))
	base := acked[0].Call
	for _, o := range acked {
		base = minTime(base, o.Call)
	}
	for k, o := range acked {
		ops = append(ops, porcupine.Operation{
			ClientId: k,
			Input:    o.ID[:12],
			Call:     o.Call.Sub(base).Nanoseconds(),
			Output:   o.LeafIndex,
			Return:   o.Return.Sub(base).Nanoseconds(),
		})
	}
	res := porcupine.CheckOperationsTimeout(leafOrderModel, ops, 30*time.Second)
	switch res {
	case porcupine.Ok:
		t.Logf("history check: %d acknowledged registrations are linearizable (leaf order follows real time)", len(ops))
	case porcupine.Illegal:
		// Name a witness pair: A returned before B was sent, index(A) ≥ index(B).
		for _, a := range acked {
			for _, b := range acked {
				if a.Return.Before(b.Call) && a.LeafIndex >= b.LeafIndex {
					t.Errorf("history check: %s returned leaf %d at %v, before %s was sent at %v, which got leaf %d",
						a.ID[:12], a.LeafIndex, a.Return.Sub(base), b.ID[:12], b.Call.Sub(base), b.LeafIndex)
					return
				}
			}
		}
		t.Error("history check: porcupine finds the history not linearizable")
	default:
		t.Errorf("history check: porcupine gave %v within 30s", res)
	}
}

// checkRealTimeOrder is checkLinearizable's property for histories too long
// for porcupine: every leaf index is unique, so the acknowledged
// registrations are linearizable exactly when no registration that returned
// before another was sent got a leaf at or after it. One sweep finds a
// violation in O(n log n).
func checkRealTimeOrder(t *testing.T, acked []*outcome) {
	t.Helper()
	if a, b := realTimeOrderViolation(acked); a != nil {
		t.Errorf("history check: %s returned leaf %d before %s was sent, which got leaf %d",
			a.ID[:12], a.LeafIndex, b.ID[:12], b.LeafIndex)
		return
	}
	t.Logf("history check: %d acknowledged registrations in real-time leaf order", len(acked))
}

// realTimeOrderViolation returns a registration a that returned before b
// was sent and got a leaf at or after b's, if there is one.
func realTimeOrderViolation(acked []*outcome) (a, b *outcome) {
	byReturn := slices.Clone(acked)
	slices.SortFunc(byReturn, func(a, b *outcome) int { return a.Return.Compare(b.Return) })
	byCall := slices.Clone(acked)
	slices.SortFunc(byCall, func(a, b *outcome) int { return a.Call.Compare(b.Call) })
	var maxBefore *outcome
	i := 0
	for _, b := range byCall {
		for ; i < len(byReturn) && byReturn[i].Return.Before(b.Call); i++ {
			if maxBefore == nil || byReturn[i].LeafIndex > maxBefore.LeafIndex {
				maxBefore = byReturn[i]
			}
		}
		if maxBefore != nil && maxBefore.LeafIndex >= b.LeafIndex {
			return maxBefore, b
		}
	}
	return nil, nil
}

func TestRealTimeOrderViolation(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(0, 0).Add(time.Duration(s) * time.Second) }
	op := func(call, ret int, leaf uint64) *outcome {
		return &outcome{ID: fmt.Sprintf("%012d", leaf), Call: at(call), Return: at(ret), LeafIndex: leaf}
	}
	// Overlapping calls may take leaves in either order.
	if a, _ := realTimeOrderViolation([]*outcome{op(0, 5, 2), op(1, 6, 1), op(7, 8, 3)}); a != nil {
		t.Fatalf("a linearizable history: violation %+v", a)
	}
	// The third returned before the fourth was sent, yet took a later leaf.
	if a, b := realTimeOrderViolation([]*outcome{op(0, 5, 2), op(1, 6, 1), op(2, 3, 9), op(4, 8, 3)}); a == nil || a.LeafIndex != 9 || b.LeafIndex != 3 {
		t.Fatalf("violation not found: %+v %+v", a, b)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// checkEntries checks that every acknowledged statement is in the log
// exactly once at the leaf index of its receipt, on every listed node:
// indexes are distinct, GET /entries/{id} answers 200 on every node (302s
// from a lagging follower retried for up to 15 s) with the same receipt
// byte for byte as the one the client got, and that receipt verifies.
func checkEntries(t *testing.T, c *cluster, acked []*outcome, nodes ...int) {
	t.Helper()
	keys := c.keys()
	byIndex := map[uint64]string{}
	for _, o := range acked {
		if prev, dup := byIndex[o.LeafIndex]; dup && prev != o.ID {
			t.Errorf("entries %s and %s were both acknowledged at leaf %d", prev, o.ID, o.LeafIndex)
		}
		byIndex[o.LeafIndex] = o.ID
		entry, err := entryBytes(o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if vr, err := cose.VerifyInclusion(o.Receipt, entry, keys); err != nil {
			t.Errorf("receipt node %d returned for %s does not verify: %v", o.Node, o.ID, err)
		} else if vr.LeafIndex != o.LeafIndex {
			t.Errorf("receipt for %s: verified leaf %d, parsed %d", o.ID, vr.LeafIndex, o.LeafIndex)
		}
	}
	if t.Failed() {
		return
	}
	bad := 0
	for _, id := range nodes {
		m := c.node(id)
		for _, o := range acked {
			got, err := fetchReceipt(m, o.ID, 15*time.Second)
			if err != nil {
				t.Errorf("node %d: %v", id, err)
				bad++
			} else if !bytes.Equal(got, o.Receipt) {
				rc, _ := cose.ParseReceipt(got)
				idx := "?"
				if rc != nil && len(rc.Inclusion) == 1 {
					idx = strconv.FormatUint(rc.Inclusion[0].LeafIndex, 10)
				}
				t.Errorf("node %d: receipt for %s (leaf %s) differs from the one node %d returned (leaf %d)", id, o.ID, idx, o.Node, o.LeafIndex)
				bad++
			}
			if bad >= 5 {
				t.Fatalf("giving up after %d bad entries", bad)
			}
		}
	}
	t.Logf("entries check: %d acknowledged statements at distinct leaves, same receipt on nodes %v", len(acked), nodes)
}

func entryBytes(id string) ([]byte, error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("entry id %q: %v", id, err)
	}
	return b, nil
}

// fetchReceipt GETs /entries/{id} on m until 200, retrying 302 and 503
// until within has passed.
func fetchReceipt(m *member, id string, within time.Duration) ([]byte, error) {
	deadline := time.Now().Add(within)
	var last string
	for {
		r, err := m.do(http.MethodGet, "/entries/"+id, "", nil)
		switch {
		case err != nil:
			last = err.Error()
		case r.Status == http.StatusOK:
			return r.Body, nil
		case r.Status == http.StatusFound || r.Status == http.StatusServiceUnavailable:
			last = strconv.Itoa(r.Status)
		default:
			return nil, fmt.Errorf("GET /entries/%s: %d %s", id, r.Status, describeProblem(r))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("GET /entries/%s: no 200 within %v (last %s)", id, within, last)
		}
		time.Sleep(100 * time.Millisecond) // a client's poll interval; the GET is the condition
	}
}

// cpWatcher polls GET /checkpoint on every node every ~100 ms and keeps
// every note it sees.
type cpWatcher struct {
	c    *cluster
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	roots     map[uint64][]byte // size → root
	from      map[uint64]int    // size → a node that served it
	conflicts []string
	polls     int
}

func watchCheckpoints(c *cluster) *cpWatcher {
	w := &cpWatcher{c: c, stop: make(chan struct{}), done: make(chan struct{}), roots: map[uint64][]byte{}, from: map[uint64]int{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, m := range c.members {
				w.pollOnce(m)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	c.t.Cleanup(w.halt)
	return w
}

func (w *cpWatcher) pollOnce(m *member) {
	r, err := m.do(http.MethodGet, "/checkpoint", "", nil)
	if err != nil || r.Status != http.StatusOK {
		return
	}
	w.record(m.id, r.Body)
}

func (w *cpWatcher) record(node int, note []byte) {
	cp, err := parseCheckpoint(note)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if err != nil {
		w.conflicts = append(w.conflicts, fmt.Sprintf("node %d served an unparsable checkpoint: %v", node, err))
		return
	}
	if cp.Origin != w.c.issuerOrigin() {
		w.conflicts = append(w.conflicts, fmt.Sprintf("node %d served a checkpoint with origin %q", node, cp.Origin))
	}
	if prev, ok := w.roots[cp.Size]; ok && !bytes.Equal(prev, cp.Root) {
		w.conflicts = append(w.conflicts, fmt.Sprintf("size %d: node %d served root %x, node %d root %x", cp.Size, w.from[cp.Size], prev, node, cp.Root))
		return
	}
	w.roots[cp.Size], w.from[cp.Size] = cp.Root, node
}

func (w *cpWatcher) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// check stops the watcher and checks every note seen against the newest
// checkpoint of node `final` (the settled leader): no two roots for one
// size, and a verifying consistency proof from every size seen.
func (w *cpWatcher) check(t *testing.T, final int) {
	t.Helper()
	w.halt()
	m := w.c.node(final)
	w.pollOnce(m)
	newest := m.checkpoint(t)
	w.record(final, newest.Note)
	keys := w.c.keys()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.conflicts {
		t.Errorf("fork check: %s", s)
	}
	sizes := make([]uint64, 0, len(w.roots))
	for s := range w.roots {
		sizes = append(sizes, s)
	}
	slices.Sort(sizes)
	if sizes[len(sizes)-1] != newest.Size {
		t.Errorf("fork check: a node served a checkpoint of size %d (node %d), beyond node %d's newest %d", sizes[len(sizes)-1], w.from[sizes[len(sizes)-1]], final, newest.Size)
	}
	for _, s := range sizes {
		if s > newest.Size {
			continue
		}
		path := fmt.Sprintf("/proofs/consistency?from=%d&to=%d", s, newest.Size)
		r := m.get(t, path)
		if r.Status != http.StatusOK {
			t.Errorf("fork check: node %d GET %s: %d %s", final, path, r.Status, describeProblem(r))
			continue
		}
		vr, err := cose.VerifyConsistency(r.Body, s, w.roots[s], keys)
		if err != nil {
			t.Errorf("fork check: checkpoint of size %d (from node %d) is not consistent with node %d's newest (size %d): %v", s, w.from[s], final, newest.Size, err)
			continue
		}
		if !bytes.Equal(vr.Root, newest.Root) || vr.TreeSize != newest.Size {
			t.Errorf("fork check: consistency from %d leads to size %d root %x, want %d %x", s, vr.TreeSize, vr.Root, newest.Size, newest.Root)
		}
	}
	t.Logf("fork check: %d distinct checkpoint sizes (≤ %d) seen in %d polls, all consistent with the final tree", len(sizes), newest.Size, w.polls)
}

// issuerOrigin is the origin line the network's checkpoints carry.
func (c *cluster) issuerOrigin() string { return c.issuer }

// checkSameTree fetches /checkpoint from every listed node (settled), and
// checks that each node proves its newest tree consistent with the
// smallest of them, and all agree on it.
func checkSameTree(t *testing.T, c *cluster, nodes ...int) {
	t.Helper()
	keys := c.keys()
	cps := map[int]checkpoint{}
	small := -1
	for _, id := range nodes {
		cps[id] = c.node(id).checkpoint(t)
		if small < 0 || cps[id].Size < cps[small].Size {
			small = id
		}
	}
	base := cps[small]
	for _, id := range nodes {
		path := fmt.Sprintf("/proofs/consistency?from=%d&to=%d", base.Size, cps[id].Size)
		r := c.node(id).get(t, path)
		if r.Status != http.StatusOK {
			t.Errorf("node %d GET %s: %d %s", id, path, r.Status, describeProblem(r))
			continue
		}
		vr, err := cose.VerifyConsistency(r.Body, base.Size, base.Root, keys)
		if err != nil {
			t.Errorf("node %d's tree of size %d is not consistent with node %d's of size %d: %v", id, cps[id].Size, small, base.Size, err)
		} else if !bytes.Equal(vr.Root, cps[id].Root) {
			t.Errorf("node %d: consistency proof leads to root %x, its checkpoint says %x", id, vr.Root, cps[id].Root)
		}
	}
	t.Logf("same tree: nodes %v consistent from size %d", nodes, base.Size)
}
