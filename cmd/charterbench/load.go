package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/fxamacker/cbor/v2"
)

// newClient returns the client of one publisher: its own transport holding
// at most one keep-alive HTTP/1.1 connection, TLS pinned to roots (the
// service certificate), and redirects left to the caller, which follows
// them itself to honour Retry-After and to count the whole time.
func newClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		// A non-nil empty map turns HTTP/2 off: one HTTP/1.1 connection per
		// publisher, as a fleet of independent CI systems would make.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// outcome is the result of one registration: success means a 201 receipt,
// or a 303/302/202 followed until a 200 receipt.
type outcome struct {
	ok      bool
	latency time.Duration // from the start given to register to the receipt or failure
	polls   int           // GETs of the Location
	failure string        // for !ok: "STATUS Title", "timeout", "transport: …"
	detail  string        // for a problem: its detail (-2), if any
	fatal   bool          // the worker cannot go on (closedLoop stops it)
}

// maxRetryAfter caps one wait on Retry-After so a misbehaving server cannot
// park a publisher beyond the request deadline anyway.
const maxRetryAfter = 10 * time.Second

// writeTo is where one publisher sends its writes: its node, or, once that
// node named the leader in a relayed answer (client.HeaderLeader) and
// follow is on (--follow-leader), the leader, as client.Client does.
type writeTo struct {
	router *client.Router
	follow bool
}

// post POSTs body to path under the writes' target, as package post does;
// base is the node that answered. A leader that cannot be reached is
// dropped and the write sent to the publisher's own node (registration is
// idempotent).
func (w writeTo) post(ctx context.Context, c *http.Client, path, contentType string, body []byte, max int64) (base *url.URL, answer []byte, status int, hdr http.Header, failure string) {
	base, _ = w.router.Send(ctx, func(base *url.URL) error {
		answer, status, hdr, failure = post(ctx, c, base.JoinPath(path).String(), contentType, body, max)
		if failure != "" {
			return errors.New(failure)
		}
		return nil
	})
	if failure == "" && w.follow {
		w.router.Observe(hdr)
	}
	return base, answer, status, hdr, failure
}

// moved counts the publishers whose writes go to another node than their
// own: the leader their follower named.
func moved(routes []writeTo) int {
	n := 0
	for _, w := range routes {
		if w.router.Write() != w.router.Home() {
			n++
		}
	}
	return n
}

// register POSTs stmt to /entries and, on a redirect, polls the Location
// (at the node that answered) until the receipt is there. The latency
// counts from start, which is the send time in a closed loop and the
// scheduled arrival in an open loop. The whole exchange is bounded by ctx.
func register(ctx context.Context, c *http.Client, to writeTo, stmt []byte, start time.Time) outcome {
	fail := func(f string) outcome { return outcome{latency: time.Since(start), failure: f} }
	base, body, status, hdr, failure := to.post(ctx, c, "entries", "application/cose", stmt, 4<<20)
	if failure != "" {
		return fail(failure)
	}
	polls := 0
	for {
		switch status {
		case http.StatusCreated, http.StatusOK:
			if len(body) == 0 {
				o := fail(fmt.Sprintf("%d empty receipt", status))
				o.polls = polls
				return o
			}
			return outcome{ok: true, latency: time.Since(start), polls: polls}
		case http.StatusSeeOther, http.StatusFound, http.StatusAccepted:
			loc := hdr.Get("Location")
			if loc == "" {
				o := fail(fmt.Sprintf("%d without Location", status))
				o.polls = polls
				return o
			}
			next, err := base.Parse(loc)
			if err != nil {
				o := fail(fmt.Sprintf("%d bad Location %q", status, loc))
				o.polls = polls
				return o
			}
			t := time.NewTimer(retryAfter(hdr.Get("Retry-After")))
			select {
			case <-ctx.Done():
				t.Stop()
				o := fail("timeout")
				o.polls = polls
				return o
			case <-t.C:
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
			if err != nil {
				return fail("request: " + err.Error())
			}
			req.Header.Set("Accept", "application/scitt-receipt+cose, application/concise-problem-details+cbor")
			polls++
			resp, err := c.Do(req)
			if err != nil {
				o := fail(transportFailure(ctx, err))
				o.polls = polls
				return o
			}
			if body, status, hdr, err = drain(resp); err != nil {
				o := fail(transportFailure(ctx, err))
				o.polls = polls
				return o
			}
		default:
			o := fail(problemFailure(status, hdr, body))
			o.detail = problemDetail(hdr, body)
			o.polls = polls
			return o
		}
	}
}

// drain reads and closes the body so the connection is reused.
func drain(resp *http.Response) ([]byte, int, http.Header, error) {
	return drainAtMost(resp, 4<<20)
}

func drainAtMost(resp *http.Response, max int64) ([]byte, int, http.Header, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max))
	return b, resp.StatusCode, resp.Header, err
}

// post sends body to url as contentType and reads at most max bytes of
// the answer; failure says what went wrong before an answer was read.
func post(ctx context.Context, c *http.Client, url, contentType string, body []byte, max int64) (answer []byte, status int, hdr http.Header, failure string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, nil, "request: " + err.Error()
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/scitt-receipt+cose, application/cbor, application/concise-problem-details+cbor")
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, nil, transportFailure(ctx, err)
	}
	answer, status, hdr, err = drainAtMost(resp, max)
	if err != nil {
		return nil, 0, nil, transportFailure(ctx, err)
	}
	return answer, status, hdr, ""
}

// retryAfter reads delay-seconds (RFC 9110 §10.2.3); an absent or
// unreadable value means 1 s, the value the service sends. HTTP dates are
// not used by the service and count as 1 s.
func retryAfter(v string) time.Duration {
	if v == "" {
		return time.Second
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return time.Second
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

func transportFailure(ctx context.Context, err error) string {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport"
}

// problemFailure names a failure by status and, for concise problem
// details (RFC 9290), its title (-1), e.g. "503 ServiceUnavailable".
func problemFailure(status int, hdr http.Header, body []byte) string {
	s := strconv.Itoa(status)
	if ct := hdr.Get("Content-Type"); ct == "application/concise-problem-details+cbor" {
		var p map[int]any
		if err := cbor.Unmarshal(body, &p); err == nil {
			if t, ok := p[-1].(string); ok && t != "" {
				return s + " " + t
			}
		}
		return s + " (unreadable problem details)"
	}
	if t := http.StatusText(status); t != "" {
		return s + " " + t
	}
	return s
}

// problemDetail is the detail (-2) of concise problem details, or "".
func problemDetail(hdr http.Header, body []byte) string {
	if hdr.Get("Content-Type") != "application/concise-problem-details+cbor" {
		return ""
	}
	var p map[int]any
	if cbor.Unmarshal(body, &p) != nil {
		return ""
	}
	d, _ := p[-2].(string)
	return d
}

// result is what a phase measured.
type result struct {
	ok        int
	latencies []time.Duration   // of successful registrations
	failures  map[string]int    // by failure name; never dropped
	examples  map[string]string // a problem detail seen for each failure name
	polls     int
	elapsed   time.Duration // from the phase start until the last response
	unsent    int           // open loop: arrivals never sent before the drain deadline
}

func (r *result) add(o outcome) {
	r.polls += o.polls
	if o.ok {
		r.ok++
		r.latencies = append(r.latencies, o.latency)
		return
	}
	if r.failures == nil {
		r.failures = map[string]int{}
	}
	r.failures[o.failure]++
	r.example(o.failure, o.detail)
}

// example keeps the first non-empty detail of a failure kind: PolicyError
// says which limit (time, memory, stack) a policy hit only in its detail.
func (r *result) example(kind, detail string) {
	if detail == "" || r.examples[kind] != "" {
		return
	}
	if r.examples == nil {
		r.examples = map[string]string{}
	}
	r.examples[kind] = detail
}

func (r *result) merge(o *result) {
	r.ok += o.ok
	r.latencies = append(r.latencies, o.latencies...)
	for k, v := range o.failures {
		if r.failures == nil {
			r.failures = map[string]int{}
		}
		r.failures[k] += v
	}
	for k, d := range o.examples {
		r.example(k, d)
	}
	r.polls += o.polls
	r.unsent += o.unsent
}

// writeFailures lists the failures by kind, sorted, each with its example
// detail, every line indented by indent.
func (r *result) writeFailures(w io.Writer, indent string) {
	kinds := make([]string, 0, len(r.failures))
	for k := range r.failures {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "%s%-40s %d\n", indent, k, r.failures[k])
		if d := r.examples[k]; d != "" {
			fmt.Fprintf(w, "%s  e.g. %s\n", indent, d)
		}
	}
}

func (r *result) errors() int {
	n := r.unsent
	for _, v := range r.failures {
		n += v
	}
	return n
}

// rate is successful registrations per second of the phase.
func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// loadConfig is what both loops share.
type loadConfig struct {
	routes   []writeTo      // where each publisher sends its writes, parallel to clients
	clients  []*http.Client // one per publisher
	pool     *pool
	duration time.Duration
	// maxWait bounds one registration (POST and polls).
	maxWait time.Duration
}

// runClosed is the throughput phase: every publisher sends its next
// statement as soon as the previous one has its receipt, until duration
// has passed; requests in flight then finish (each bounded by maxWait).
func runClosed(ctx context.Context, cfg loadConfig) result {
	return closedLoop(ctx, len(cfg.clients), cfg.duration, cfg.maxWait, func(ctx context.Context, i int) outcome {
		stmt, err := cfg.pool.take()
		if err != nil {
			return outcome{failure: "sign: " + err.Error(), fatal: true}
		}
		return register(ctx, cfg.clients[i], cfg.routes[i], stmt, time.Now())
	})
}

// closedLoop runs op for workers 0..n-1, each calling it again as soon as
// the previous call returned, until duration has passed; calls in flight
// then finish (each bounded by maxWait). An outcome marked fatal stops its
// worker.
func closedLoop(ctx context.Context, n int, duration, maxWait time.Duration, op func(ctx context.Context, i int) outcome) result {
	start := time.Now()
	deadline := start.Add(duration)
	parts := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &parts[i]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				rctx, cancel := context.WithTimeout(ctx, maxWait)
				o := op(rctx, i)
				cancel()
				r.add(o)
				if o.fatal {
					return
				}
			}
		}()
	}
	wg.Wait()
	return mergeParts(parts, start)
}

// dueArrivals is how many of the n arrivals scheduled every interval from
// start are due at now: arrival i is due at start + i×interval, whenever the
// generator gets to run, so a late wake-up sends the backlog at once and
// latency is measured from the schedule (no coordinated omission).
func dueArrivals(start, now time.Time, interval time.Duration, n int) int {
	if now.Before(start) {
		return 0
	}
	return min(n, int(now.Sub(start)/interval)+1)
}

// openPlan is an open loop's schedule: n arrivals, one every interval from
// the phase start, each carrying per statements.
type openPlan struct {
	n        int
	interval time.Duration
	per      int
}

// planOpen schedules statements at perSecond for duration, per statements
// to an arrival (one request): floor(perSecond × duration ÷ per) arrivals,
// per ÷ perSecond apart. Only whole requests are scheduled, so a batch
// plan sends at most per-1 statements fewer than a single-statement one.
func planOpen(perSecond float64, duration time.Duration, per int) openPlan {
	return openPlan{
		n:        int(math.Floor(perSecond * duration.Seconds() / float64(per))),
		interval: time.Duration(float64(per) * float64(time.Second) / perSecond),
		per:      per,
	}
}

// runOpen is the latency phase: single statements arriving at perSecond
// for the phase's duration, whatever the server's pace (see openLoop).
func runOpen(ctx context.Context, cfg loadConfig, perSecond float64) result {
	return openLoop(ctx, cfg, planOpen(perSecond, cfg.duration, 1), func(ctx context.Context, i int, at time.Time) []outcome {
		stmt, err := cfg.pool.take()
		if err != nil {
			return []outcome{{failure: "sign: " + err.Error()}}
		}
		return []outcome{register(ctx, cfg.clients[i], cfg.routes[i], stmt, at)}
	})
}

// openLoop is an open loop: plan.n arrivals at fixed times for the phase's
// duration, whatever the server's pace. A free publisher serves the next
// due arrival with op, which returns exactly plan.per outcomes (one per
// statement it carried) with latencies counted from the scheduled arrival
// at, so time spent waiting for a free publisher is included and a slow
// server cannot hide its queue (no coordinated omission). Arrivals not sent
// by duration+maxWait are counted as plan.per unsent errors each.
func openLoop(ctx context.Context, cfg loadConfig, plan openPlan, op func(ctx context.Context, i int, at time.Time) []outcome) result {
	n := plan.n
	arrivals := make(chan time.Time, max(n, 1))
	start := time.Now()
	drainBy := start.Add(cfg.duration + cfg.maxWait)
	interval := plan.interval

	go func() {
		defer close(arrivals)
		for i := 0; i < n; {
			// Release every arrival that is due; a coarse sleep below
			// cannot skew the schedule, only batch it by a millisecond.
			due := dueArrivals(start, time.Now(), interval, n)
			for ; i < due; i++ {
				arrivals <- start.Add(time.Duration(i) * interval)
			}
			if i < n {
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(interval, time.Millisecond)):
				}
			}
		}
	}()

	parts := make([]result, len(cfg.clients))
	var wg sync.WaitGroup
	for i := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &parts[i]
			for at := range arrivals {
				if ctx.Err() != nil || time.Now().After(drainBy) {
					r.unsent += plan.per
					continue
				}
				rctx, cancel := context.WithDeadline(ctx, minTime(time.Now().Add(cfg.maxWait), drainBy))
				for _, o := range fitOutcomes(op(rctx, i, at), plan.per) {
					r.add(o)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	total := result{}
	for i := range parts {
		total.merge(&parts[i])
	}
	// Arrivals never dispatched because ctx ended early are unsent too
	// (errors() already counts the unsent ones the publishers skipped).
	accounted := total.ok + total.errors()
	total.unsent += n*plan.per - accounted
	total.elapsed = time.Since(start)
	return total
}

// fitOutcomes makes an arrival's outcomes exactly per, one per statement
// it carried: an op that answered for fewer or more (a bug in it) would
// otherwise make the phase's counts disagree with its schedule, and show
// as a negative unsent figure rather than an error. Missing outcomes are
// failures that say so; extra ones are dropped.
func fitOutcomes(outs []outcome, per int) []outcome {
	if len(outs) == per {
		return outs
	}
	fitted := append(make([]outcome, 0, per), outs[:min(len(outs), per)]...)
	for len(fitted) < per {
		fitted = append(fitted, outcome{failure: fmt.Sprintf("charterbench: %d results for an arrival of %d statements", len(outs), per)})
	}
	return fitted
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted: the smallest value with at least p% of the values at or below
// it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// mergeParts is the phase's result: its publishers' parts together, over
// the time since start.
func mergeParts(parts []result, start time.Time) result {
	var total result
	for i := range parts {
		total.merge(&parts[i])
	}
	total.elapsed = time.Since(start)
	return total
}
