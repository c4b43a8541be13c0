package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/fxamacker/cbor/v2"
)

// TestRegisterBatch: a batch answer becomes one outcome per statement: a
// receipt is a success, a problem a failure named by its title, and an
// entry without a receipt is polled until its receipt comes; a refused
// request is every statement's failure.
func TestRegisterBatch(t *testing.T) {
	polled := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/entries/batch":
			b, _ := io.ReadAll(r.Body)
			var stmts [][]byte
			if err := cbor.Unmarshal(b, &stmts); err != nil || len(stmts) != 3 {
				http.Error(w, "bad batch", http.StatusBadRequest)
				return
			}
			out, _ := cbor.Marshal([]batchItem{{EntryID: "a", Receipt: []byte{1}}, {Title: "InvalidSignature"}, {EntryID: "c"}})
			w.Header().Set("Content-Type", "application/cbor")
			_, _ = w.Write(out)
		case r.Method == http.MethodGet && r.URL.Path == "/entries/c":
			polled++
			if polled == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusFound)
				return
			}
			_, _ = w.Write([]byte{2})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := registerBatch(ctx, srv.Client(), writeTo{router: client.NewRouter(base)}, [][]byte{{1}, {2}, {3}}, time.Now())
	if len(out) != 3 || !out[0].ok || out[1].ok || out[1].failure != "200 batch: InvalidSignature" || !out[2].ok || out[2].polls != 2 {
		t.Fatalf("outcomes %+v", out)
	}
	out = registerBatch(ctx, srv.Client(), writeTo{router: client.NewRouter(base)}, [][]byte{{1}}, time.Now())
	if len(out) != 1 || out[0].ok || out[0].failure != "400 Bad Request" {
		t.Fatalf("a refused batch: %+v", out)
	}
}

// planOpen schedules whole requests: floor(rate × duration ÷ size)
// arrivals, size ÷ rate apart; size 1 is the single-statement schedule.
func TestPlanOpen(t *testing.T) {
	for _, c := range []struct {
		rate float64
		d    time.Duration
		size int
		want openPlan
	}{
		{200, 300 * time.Millisecond, 1, openPlan{n: 60, interval: 5 * time.Millisecond, per: 1}},
		{400, 300 * time.Millisecond, 4, openPlan{n: 30, interval: 10 * time.Millisecond, per: 4}},
		{5400, 10 * time.Second, 32, openPlan{n: 1687, interval: 5925925 * time.Nanosecond, per: 32}},
		{10, time.Second, 32, openPlan{n: 0, interval: 3200 * time.Millisecond, per: 32}},
	} {
		if got := planOpen(c.rate, c.d, c.size); got != c.want {
			t.Errorf("planOpen(%v, %v, %d) = %+v, want %+v", c.rate, c.d, c.size, got, c.want)
		}
	}
}

// batchServer answers POST /entries/batch with answer(k, statements) for
// the k-th batch (from 0) and records when each batch came and its size.
type batchServer struct {
	mu     sync.Mutex
	times  []time.Time
	sizes  []int
	answer func(k int, stmts [][]byte, w http.ResponseWriter)
}

func (b *batchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var stmts [][]byte
	if r.Method != http.MethodPost || r.URL.Path != "/entries/batch" || r.Header.Get("Content-Type") != "application/cbor" || cbor.Unmarshal(body, &stmts) != nil {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	b.mu.Lock()
	k := len(b.times)
	b.times = append(b.times, time.Now())
	b.sizes = append(b.sizes, len(stmts))
	b.mu.Unlock()
	b.answer(k, stmts, w)
}

// receipts answers every statement of a batch with a receipt.
func receipts(_ int, stmts [][]byte, w http.ResponseWriter) {
	items := make([]batchItem, len(stmts))
	for i := range items {
		items[i] = batchItem{EntryID: fmt.Sprint(i), Receipt: []byte{0xd2, 0x84}}
	}
	out, _ := cbor.Marshal(items)
	w.Header().Set("Content-Type", "application/cbor")
	w.Write(out)
}

// Phase 2 with batches sends exactly the scheduled batches, each of size
// statements, never before their scheduled time (so not in one burst),
// and reports one latency per statement, its batch's.
func TestOpenBatchPacing(t *testing.T) {
	const (
		size = 4
		rate = 400.0 // statements/s: one batch every 10 ms
	)
	srv := &batchServer{answer: receipts}
	cfg := fakeNode(t, srv, 8, 1000, 300*time.Millisecond)
	plan := planOpen(rate, cfg.duration, size)
	t0 := time.Now()
	r := runOpenBatch(context.Background(), cfg, rate, size)

	if r.errors() != 0 {
		t.Fatalf("errors %v unsent %d, want none", r.failures, r.unsent)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.times) != plan.n || plan.n != 30 {
		t.Fatalf("the server saw %d batches, want the %d scheduled (400/s × 0.3 s ÷ 4 = 30)", len(srv.times), plan.n)
	}
	for k, n := range srv.sizes {
		if n != size {
			t.Errorf("batch %d carried %d statements, want %d", k, n, size)
		}
	}
	// Batch k is released no earlier than start + k×interval, and the
	// phase started after t0: however late a loaded machine runs, the k-th
	// batch to reach the server cannot come before t0 + k×interval. A
	// generator that sent its batches in a burst would.
	times := slices.Clone(srv.times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for k, at := range times {
		if due := t0.Add(time.Duration(k) * plan.interval); at.Before(due) {
			t.Errorf("batch %d reached the server %v before its schedule", k, due.Sub(at))
		}
	}
	if r.ok != plan.n*size || len(r.latencies) != r.ok {
		t.Fatalf("ok %d with %d latencies, want %d statements, one latency each", r.ok, len(r.latencies), plan.n*size)
	}
	// A statement's latency is its batch's: every value comes in fours.
	count := map[time.Duration]int{}
	for _, l := range r.latencies {
		if l <= 0 {
			t.Fatalf("latency %v", l)
		}
		count[l]++
	}
	for l, n := range count {
		if n%size != 0 {
			t.Errorf("latency %v seen %d times, want a multiple of the batch size %d", l, n, size)
		}
	}
}

// Errors in a batch phase 2 are counted per statement: a problem for one
// statement in the answer is one error, a refused batch is size errors, a
// batch that could not be signed is size errors; every scheduled statement
// is accounted for.
func TestOpenBatchErrorsPerStatement(t *testing.T) {
	const size = 4
	problem, _ := cbor.Marshal(map[int]string{-1: "ServiceUnavailable", -2: "try later"})
	var whole, partial, refused atomic.Int64
	srv := &batchServer{answer: func(k int, stmts [][]byte, w http.ResponseWriter) {
		switch k % 3 {
		case 0:
			whole.Add(1)
			receipts(k, stmts, w)
		case 1:
			partial.Add(1)
			items := make([]batchItem, len(stmts))
			for i := range items {
				items[i] = batchItem{EntryID: fmt.Sprint(i), Receipt: []byte{1}}
				if i%2 == 1 {
					items[i] = batchItem{Title: "InvalidSignature", Detail: "bad"}
				}
			}
			out, _ := cbor.Marshal(items)
			w.Header().Set("Content-Type", "application/cbor")
			w.Write(out)
		case 2:
			refused.Add(1)
			w.Header().Set("Content-Type", "application/concise-problem-details+cbor")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(problem)
		}
	}}
	cfg := fakeNode(t, srv, 4, 1000, 300*time.Millisecond)
	r := runOpenBatch(context.Background(), cfg, 400, size)

	if n := whole.Load() + partial.Load() + refused.Load(); n != 30 || refused.Load() == 0 || partial.Load() == 0 {
		t.Fatalf("the server answered %d batches (%d whole, %d partial, %d refused), want all 30 kinds", n, whole.Load(), partial.Load(), refused.Load())
	}
	want := map[string]int{
		"200 batch: InvalidSignature": int(partial.Load()) * size / 2,
		"503 ServiceUnavailable":      int(refused.Load()) * size,
	}
	if len(r.failures) != len(want) {
		t.Errorf("failure kinds %v, want %v", r.failures, want)
	}
	for k, v := range want {
		if r.failures[k] != v {
			t.Errorf("failures[%q] = %d, want %d (all: %v)", k, r.failures[k], v, r.failures)
		}
	}
	if wantOK := int(whole.Load())*size + int(partial.Load())*size/2; r.ok != wantOK || len(r.latencies) != wantOK {
		t.Errorf("ok %d (%d latencies), want %d", r.ok, len(r.latencies), wantOK)
	}
	if r.ok+r.errors() != 30*size || r.unsent != 0 {
		t.Errorf("ok %d + errors %d (unsent %d), want all %d statements accounted", r.ok, r.errors(), r.unsent, 30*size)
	}

	// A pool that cannot sign: no batch is sent, and each scheduled
	// statement is one error.
	cfg.pool = &pool{late: func() ([]byte, error) { return nil, errors.New("no key") }}
	before := len(srv.times)
	r = runOpenBatch(context.Background(), cfg, 400, size)
	if r.ok != 0 || r.failures["sign: no key"] != 30*size || r.errors() != 30*size {
		t.Errorf("unsignable batches: ok %d failures %v errors %d, want %d sign errors", r.ok, r.failures, r.errors(), 30*size)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.times) != before {
		t.Errorf("%d batches sent without statements", len(srv.times)-before)
	}
}

// An arrival whose op answers for fewer statements than it carried (or
// more) is counted statement by statement all the same: the missing ones
// are failures that say so, the phase's counts match its schedule, and
// nothing shows as a negative unsent figure.
func TestOpenLoopFitsOutcomesToArrivals(t *testing.T) {
	const size = 4
	cfg := fakeNode(t, &batchServer{answer: receipts}, 4, 1000, 300*time.Millisecond)
	plan := planOpen(400, cfg.duration, size)
	var calls atomic.Int64
	r := openLoop(context.Background(), cfg, plan, func(ctx context.Context, i int, at time.Time) []outcome {
		if calls.Add(1)%2 == 0 {
			return make([]outcome, size+3) // too many: the extra ones are dropped
		}
		return []outcome{{ok: true}} // one for four statements
	})
	if r.unsent != 0 {
		t.Errorf("unsent = %d, want 0", r.unsent)
	}
	if got, want := r.ok+r.errors(), plan.n*size; got != want {
		t.Errorf("ok + errors = %d, want the schedule's %d statements", got, want)
	}
	short := int(calls.Load()+1) / 2 // the odd calls answered for one statement
	if got := r.failures["charterbench: 1 results for an arrival of 4 statements"]; got != short*(size-1) {
		t.Errorf("failures for the short answers = %d, want %d (%v)", got, short*(size-1), r.failures)
	}
}

// TestPublishersFollowTheNamedLeader: with --follow-leader a publisher
// whose node answers with Charter-Leader sends its next writes, single and
// batched, to that leader; without it every write stays with its node.
func TestPublishersFollowTheNamedLeader(t *testing.T) {
	var leaderWrites, nodeWrites atomic.Int64
	answer := func(count *atomic.Int64, leader string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			count.Add(1)
			if leader != "" {
				w.Header().Set(client.HeaderLeader, leader)
			}
			if r.URL.Path == "/entries" {
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte{1})
				return
			}
			var stmts [][]byte
			_ = cbor.Unmarshal(b, &stmts)
			items := make([]batchItem, len(stmts))
			for i := range items {
				items[i] = batchItem{EntryID: "x", Receipt: []byte{1}}
			}
			out, _ := cbor.Marshal(items)
			_, _ = w.Write(out)
		}
	}
	leader := httptest.NewServer(answer(&leaderWrites, ""))
	defer leader.Close()
	node := httptest.NewServer(answer(&nodeWrites, leader.URL))
	defer node.Close()
	home, _ := url.Parse(node.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, follow := range []bool{true, false} {
		leaderWrites.Store(0)
		nodeWrites.Store(0)
		to := writeTo{router: client.NewRouter(home), follow: follow}
		for i := range 4 {
			var ok bool
			if i%2 == 0 {
				ok = register(ctx, leader.Client(), to, []byte{1}, time.Now()).ok
			} else {
				ok = registerBatch(ctx, leader.Client(), to, [][]byte{{1}, {2}}, time.Now())[1].ok
			}
			if !ok {
				t.Fatalf("follow %t: write %d failed", follow, i)
			}
		}
		wantLeader, wantMoved := int64(3), 1
		if !follow {
			wantLeader, wantMoved = 0, 0
		}
		if leaderWrites.Load() != wantLeader || nodeWrites.Load() != 4-wantLeader {
			t.Errorf("follow %t: the leader took %d writes and the node %d, want %d and %d", follow, leaderWrites.Load(), nodeWrites.Load(), wantLeader, 4-wantLeader)
		}
		if got := moved([]writeTo{to}); got != wantMoved {
			t.Errorf("follow %t: moved %d, want %d", follow, got, wantMoved)
		}
	}
}
