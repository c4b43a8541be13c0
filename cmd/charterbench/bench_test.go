package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	"github.com/fxamacker/cbor/v2"
)

// fakeNode starts a TLS server with h and returns the load config for it:
// pub publishers, a pool of n statements that need no signing (the fake
// does not parse them) and the given duration.
func fakeNode(t *testing.T, h http.Handler, pub, n int, d time.Duration) loadConfig {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*http.Client, pub)
	for i := range clients {
		clients[i] = newClient(roots)
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	})
	stmts := make([][]byte, n)
	for i := range stmts {
		stmts[i] = fmt.Appendf(nil, "statement %d", i)
	}
	var late atomic.Int64
	p := &pool{stmts: stmts, late: func() ([]byte, error) {
		return fmt.Appendf(nil, "late %d", late.Add(1)), nil
	}}
	return loadConfig{routes: routesTo(assign([]*url.URL{base}, pub)), clients: clients, pool: p, duration: d, maxWait: 5 * time.Second}
}

func sorted(r result) []time.Duration {
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l
}

func TestPercentileNearestRank(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.5, time.Millisecond}} {
		if got := percentile(l, c.p); got != c.want {
			t.Errorf("p%v of 1..100ms = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v, want 7", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	// Nearest rank, not interpolation: p50 of {1,2,3,4} is 2.
	if got := percentile([]time.Duration{1, 2, 3, 4}, 50); got != 2 {
		t.Errorf("p50 of 1..4 = %v, want 2", got)
	}
}

// A server that answers 201 after a fixed delay: every registration is a
// success, none is faster than the delay, and the server saw exactly the
// requests counted.
func TestClosedLoopCountsAndLatency(t *testing.T) {
	const delay = 20 * time.Millisecond
	var posts atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/entries" || r.Header.Get("Content-Type") != "application/cose" {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		io.Copy(io.Discard, r.Body)
		posts.Add(1)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/scitt-receipt+cose")
		w.Header().Set("Location", "/entries/x")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte{0xd2, 0x84})
	})
	const pub = 4
	cfg := fakeNode(t, h, pub, 1000, 300*time.Millisecond)
	r := runClosed(context.Background(), cfg)

	if r.errors() != 0 {
		t.Fatalf("errors %v, want none", r.failures)
	}
	if int64(r.ok) != posts.Load() {
		t.Errorf("ok = %d, server saw %d POSTs", r.ok, posts.Load())
	}
	// Each publisher sends while the 300 ms window is open, one request
	// per ≥ 20 ms: at most 300/20 + 1 each; at least a few each even on a
	// loaded machine.
	if max := pub * (300/20 + 1); r.ok > max || r.ok < pub*3 {
		t.Errorf("ok = %d, want between %d and %d", r.ok, pub*3, max)
	}
	if len(r.latencies) != r.ok {
		t.Errorf("%d latencies for %d successes", len(r.latencies), r.ok)
	}
	l := sorted(r)
	if l[0] < delay {
		t.Errorf("fastest latency %v is below the server's delay %v", l[0], delay)
	}
	if p50, p99 := percentile(l, 50), percentile(l, 99); p50 < delay || p99 < p50 || p50 > 10*delay {
		t.Errorf("p50 %v p99 %v, want delay %v ≤ p50 ≤ p99 and p50 near the delay", p50, p99, delay)
	}
	if r.elapsed < 300*time.Millisecond {
		t.Errorf("elapsed %v is shorter than the phase", r.elapsed)
	}
	if got, want := r.rate(), float64(r.ok)/r.elapsed.Seconds(); got != want {
		t.Errorf("rate %v, want %v", got, want)
	}
	if r.polls != 0 {
		t.Errorf("polls = %d, want 0", r.polls)
	}
}

// A server that answers the POST with 303 and Retry-After: 1, then the GET
// of the Location with 302 once and then 200: the latency covers the whole
// exchange including the honoured wait, and every GET is counted.
func TestSeeOtherThenOK(t *testing.T) {
	var (
		mu       sync.Mutex
		posted   = map[string]time.Time{}
		gets     = map[string]int{}
		early    atomic.Int64
		postsN   atomic.Int64
		nextID   atomic.Int64
		badPaths atomic.Int64
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/entries":
			postsN.Add(1)
			id := fmt.Sprintf("%064x", nextID.Add(1))
			mu.Lock()
			posted[id] = time.Now()
			mu.Unlock()
			w.Header().Set("Location", "/entries/"+id)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusSeeOther)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/entries/"):
			id := strings.TrimPrefix(r.URL.Path, "/entries/")
			mu.Lock()
			at, ok := posted[id]
			gets[id]++
			n := gets[id]
			mu.Unlock()
			if !ok {
				badPaths.Add(1)
				w.WriteHeader(http.StatusNotFound)
				return
			}
			if time.Since(at) < 900*time.Millisecond {
				early.Add(1)
			}
			if n == 1 {
				w.Header().Set("Location", "/entries/"+id)
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusFound)
				return
			}
			w.Header().Set("Content-Type", "application/scitt-receipt+cose")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte{0xd2, 0x84})
		default:
			badPaths.Add(1)
			w.WriteHeader(http.StatusTeapot)
		}
	})
	cfg := fakeNode(t, h, 2, 100, 300*time.Millisecond)
	r := runClosed(context.Background(), cfg)

	if r.errors() != 0 {
		t.Fatalf("errors %v, want none", r.failures)
	}
	// Each publisher's first registration takes over a second, so the
	// 300 ms window admits exactly one per publisher.
	if r.ok != 2 || postsN.Load() != 2 {
		t.Fatalf("ok = %d after %d POSTs, want 2 and 2", r.ok, postsN.Load())
	}
	if r.polls != 4 {
		t.Errorf("polls = %d, want 4 (a 302 then a 200 for each)", r.polls)
	}
	if early.Load() != 0 {
		t.Errorf("%d GETs came before the 1 s Retry-After had passed", early.Load())
	}
	if badPaths.Load() != 0 {
		t.Errorf("%d requests to unexpected paths", badPaths.Load())
	}
	for _, l := range r.latencies {
		if l < time.Second || l > 3*time.Second {
			t.Errorf("latency %v, want the whole exchange (≥ 1 s Retry-After)", l)
		}
	}
}

// Failures are counted by status and problem title, never dropped, and
// successes are not mixed in.
func TestFailuresCountedByKind(t *testing.T) {
	problem := func(title string) []byte {
		b, err := cbor.Marshal(map[int]string{-1: title, -2: "detail"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var n, c201, c503, c400, c500 atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch n.Add(1) % 4 {
		case 0:
			c201.Add(1)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte{0xd2, 0x84})
		case 1:
			c503.Add(1)
			w.Header().Set("Content-Type", "application/concise-problem-details+cbor")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(problem("ServiceUnavailable"))
		case 2:
			c400.Add(1)
			w.Header().Set("Content-Type", "application/concise-problem-details+cbor")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(problem("InvalidSignature"))
		case 3:
			c500.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	cfg := fakeNode(t, h, 3, 10000, 300*time.Millisecond)
	r := runClosed(context.Background(), cfg)

	want := map[string]int{
		"503 ServiceUnavailable":    int(c503.Load()),
		"400 InvalidSignature":      int(c400.Load()),
		"500 Internal Server Error": int(c500.Load()),
	}
	for k, v := range want {
		if r.failures[k] != v {
			t.Errorf("failures[%q] = %d, server sent %d (all: %v)", k, r.failures[k], v, r.failures)
		}
	}
	if len(r.failures) != len(want) {
		t.Errorf("failure kinds %v, want exactly %v", r.failures, want)
	}
	if r.ok != int(c201.Load()) {
		t.Errorf("ok = %d, server sent %d 201s", r.ok, c201.Load())
	}
	if r.errors() != int(c503.Load()+c400.Load()+c500.Load()) {
		t.Errorf("errors() = %d, want the sum of failures", r.errors())
	}
	if r.ok == 0 || r.errors() == 0 {
		t.Fatalf("ok %d errors %d: the mix did not run", r.ok, r.errors())
	}

	var out strings.Builder
	report(&out, []row{{name: "1 closed", r: r}}, yardstick{median: 1000, slices: 1}, 0)
	for k := range want {
		if !strings.Contains(out.String(), k) {
			t.Errorf("report does not list %q:\n%s", k, out.String())
		}
	}
}

// The open loop sends exactly rate×duration arrivals, paced: a server
// that records arrival times sees them spread over the window, not in one
// burst, and latency counts from the scheduled arrival.
func TestOpenLoopPacing(t *testing.T) {
	var (
		mu    sync.Mutex
		times []time.Time
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte{0xd2, 0x84})
	})
	cfg := fakeNode(t, h, 8, 1000, 300*time.Millisecond)
	r := runOpen(context.Background(), cfg, 200)

	if r.errors() != 0 {
		t.Fatalf("errors %v unsent %d, want none", r.failures, r.unsent)
	}
	if r.ok != 60 {
		t.Fatalf("ok = %d, want 200/s × 0.3 s = 60", r.ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 60 {
		t.Fatalf("the server saw %d requests, want 60", len(times))
	}
}

// The open loop's schedule: arrival i is due at start + i×interval, and a
// late wake-up releases every arrival due by then (no coordinated omission).
func TestDueArrivals(t *testing.T) {
	start := time.Unix(1000, 0)
	interval := 5 * time.Millisecond // 200/s
	for _, c := range []struct {
		after time.Duration
		want  int
	}{
		{-time.Millisecond, 0}, {0, 1}, {4 * time.Millisecond, 1}, {5 * time.Millisecond, 2},
		{100 * time.Millisecond, 21}, {299 * time.Millisecond, 60}, {time.Hour, 60},
	} {
		if got := dueArrivals(start, start.Add(c.after), interval, 60); got != c.want {
			t.Errorf("due %v after the start: %d, want %d", c.after, got, c.want)
		}
	}
}

// A stalled server in the open loop: arrivals that cannot be sent before
// the drain deadline are reported as unsent errors, and the phase still
// ends on time.
func TestOpenLoopBacklogIsReported(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusCreated)
	})
	cfg := fakeNode(t, h, 1, 100, 200*time.Millisecond)
	cfg.maxWait = 300 * time.Millisecond
	t.Cleanup(func() { close(release) })
	start := time.Now()
	r := runOpen(context.Background(), cfg, 50) // 10 arrivals
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("phase took %v, want it bounded by duration + max-wait", el)
	}
	if r.ok != 0 {
		t.Errorf("ok = %d from a server that never answers", r.ok)
	}
	if r.ok+r.errors() != 10 {
		t.Errorf("ok %d + errors %d (failures %v, unsent %d), want all 10 arrivals accounted", r.ok, r.errors(), r.failures, r.unsent)
	}
	if r.unsent == 0 || r.failures["timeout"] == 0 {
		t.Errorf("failures %v unsent %d, want timeouts and unsent arrivals", r.failures, r.unsent)
	}
}

// Statements the generator signs are accepted by the cose package as the
// service would: the strict profile, a chain to the CA, a matching
// did:x509 issuer, a valid signature; and no two are alike.
func TestStatementsVerify(t *testing.T) {
	s, err := newSigner(3, 64)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.presign(7)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[32]byte]bool{}
	issuers := map[string]bool{}
	for i := range 8 { // the 8th is signed late
		b, err := p.take()
		if err != nil {
			t.Fatal(err)
		}
		st, err := cose.ParseStatement(b, cose.ParseOptions{})
		if err != nil {
			t.Fatalf("statement %d: %v", i, err)
		}
		iss, err := st.Verify(cose.VerifyOptions{})
		if err != nil {
			t.Fatalf("statement %d: %v", i, err)
		}
		issuers[iss.DID] = true
		if len(st.Payload) != 64 {
			t.Errorf("payload of %d bytes, want 64", len(st.Payload))
		}
		e := st.LeafEntry()
		if seen[e] {
			t.Errorf("statement %d duplicates an earlier one", i)
		}
		seen[e] = true
	}
	if len(issuers) != 3 {
		t.Errorf("%d distinct issuers, want 3 (one per key)", len(issuers))
	}
	if got := p.signed.Load(); got != 1 {
		t.Errorf("signed during the run = %d, want 1", got)
	}
	if _, err := newSigner(1, minPayloadBytes-1); err == nil {
		t.Error("a payload too small to be unique was accepted")
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"": time.Second, "0": 0, "1": time.Second, "3": 3 * time.Second,
		"86400": maxRetryAfter, "soon": time.Second, "-1": time.Second,
	} {
		if got := retryAfter(v); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestVerifyRate(t *testing.T) {
	r, err := verifyRate(50 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.median < 100 {
		t.Errorf("%v ES256 verifies/s: implausibly slow", r)
	}
	if r.slices != yardstickSlices || r.slice != 10*time.Millisecond || !(r.min <= r.median && r.median <= r.max) {
		t.Errorf("yardstick %+v: want %d slices of 10ms, min ≤ median ≤ max", r, yardstickSlices)
	}
	if got := r.String(); !strings.Contains(got, "median of 5 slices of 10ms: ") {
		t.Errorf("yardstick prints %q", got)
	}
}

// routesTo sends each publisher's writes to its base, following no leader.
func routesTo(bases []*url.URL) []writeTo {
	out := make([]writeTo, len(bases))
	for i, b := range bases {
		out[i] = writeTo{router: client.NewRouter(b)}
	}
	return out
}
