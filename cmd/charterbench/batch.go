package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// --batch N: in phase 1 each publisher sends N pre-signed statements per
// POST /entries/batch and waits for the answer before it sends the next N;
// in phase 2 one batch of N arrives every N ÷ rate seconds, on the open
// loop's fixed clock. The rate counts statements registered, and each
// statement's latency is its batch's, so both compare with --batch 1 (POST
// /entries, one statement per request).

// batchItem is one statement's result in a batch answer (spec/api.md).
type batchItem struct {
	EntryID string `cbor:"1,keyasint,omitempty"`
	Receipt []byte `cbor:"2,keyasint,omitempty"`
	Title   string `cbor:"-1,keyasint,omitempty"`
	Detail  string `cbor:"-2,keyasint,omitempty"`
}

// runClosedBatch is phase 1 with batches: every publisher sends its next
// batch of size statements as soon as the previous one is answered, until
// the phase's duration has passed.
func runClosedBatch(ctx context.Context, cfg loadConfig, size int) result {
	start := time.Now()
	deadline := start.Add(cfg.duration)
	parts := make([]result, len(cfg.clients))
	var wg sync.WaitGroup
	for i := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &parts[i]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				stmts, err := takeBatch(cfg.pool, size)
				if err != nil {
					r.add(outcome{failure: "sign: " + err.Error()})
					return
				}
				rctx, cancel := context.WithTimeout(ctx, cfg.maxWait)
				for _, o := range registerBatch(rctx, cfg.clients[i], cfg.routes[i], stmts, time.Now()) {
					r.add(o)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	return mergeParts(parts, start)
}

// runOpenBatch is phase 2 with batches: statements at perSecond for the
// phase's duration, size to a POST /entries/batch, one batch every
// size ÷ perSecond seconds on the open loop's fixed clock (openLoop), so a
// late answer does not delay the next batch. Every statement's latency
// counts from its batch's scheduled arrival.
func runOpenBatch(ctx context.Context, cfg loadConfig, perSecond float64, size int) result {
	return openLoop(ctx, cfg, planOpen(perSecond, cfg.duration, size), func(ctx context.Context, i int, at time.Time) []outcome {
		stmts, err := takeBatch(cfg.pool, size)
		if err != nil {
			// The batch is not sent: each of its statements is a failure,
			// so the phase still accounts for every scheduled statement.
			out := make([]outcome, size)
			for j := range out {
				out[j] = outcome{failure: "sign: " + err.Error()}
			}
			return out
		}
		return registerBatch(ctx, cfg.clients[i], cfg.routes[i], stmts, at)
	})
}

// takeBatch takes size statements from p.
func takeBatch(p *pool, size int) ([][]byte, error) {
	stmts := make([][]byte, size)
	for j := range stmts {
		s, err := p.take()
		if err != nil {
			return nil, err
		}
		stmts[j] = s
	}
	return stmts, nil
}

// registerBatch POSTs stmts to /entries/batch and returns one outcome
// per statement: its receipt in the answer, or its problem, or, for one
// accepted without a receipt yet, the receipt fetched from /entries/{id}
// (followed as register follows a 303). A failure of the whole request is
// every statement's.
func registerBatch(ctx context.Context, c *http.Client, to writeTo, stmts [][]byte, start time.Time) []outcome {
	all := func(o outcome) []outcome {
		out := make([]outcome, len(stmts))
		for i := range out {
			out[i] = o
		}
		return out
	}
	fail := func(f string) []outcome { return all(outcome{latency: time.Since(start), failure: f}) }
	body, err := cbor.Marshal(stmts)
	if err != nil {
		return fail("request: " + err.Error())
	}
	base, rbody, status, hdr, failure := to.post(ctx, c, "entries/batch", "application/cbor", body, 64<<20)
	if failure != "" {
		return fail(failure)
	}
	if status != http.StatusOK {
		o := outcome{latency: time.Since(start), failure: problemFailure(status, hdr, rbody), detail: problemDetail(hdr, rbody)}
		return all(o)
	}
	var items []batchItem
	if err := cbor.Unmarshal(rbody, &items); err != nil || len(items) != len(stmts) {
		return fail(fmt.Sprintf("200 unreadable batch answer (%d results for %d statements, %v)", len(items), len(stmts), err))
	}
	out := make([]outcome, len(stmts))
	answered := time.Since(start)
	for i, it := range items {
		switch {
		case it.Title != "":
			out[i] = outcome{latency: answered, failure: "200 batch: " + it.Title, detail: it.Detail}
		case len(it.Receipt) > 0:
			out[i] = outcome{ok: true, latency: answered}
		case it.EntryID != "":
			out[i] = pollEntry(ctx, c, base, it.EntryID, start)
		default:
			out[i] = outcome{latency: answered, failure: "200 batch: empty result"}
		}
	}
	return out
}

// pollEntry fetches /entries/{id} until its receipt is there, honouring
// Retry-After, as register follows a 303.
func pollEntry(ctx context.Context, c *http.Client, base *url.URL, id string, start time.Time) outcome {
	loc := base.JoinPath("entries", id).String()
	for polls := 1; ; polls++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		if err != nil {
			return outcome{latency: time.Since(start), failure: "request: " + err.Error(), polls: polls}
		}
		resp, err := c.Do(req)
		if err != nil {
			return outcome{latency: time.Since(start), failure: transportFailure(ctx, err), polls: polls}
		}
		body, status, hdr, err := drain(resp)
		switch {
		case err != nil:
			return outcome{latency: time.Since(start), failure: transportFailure(ctx, err), polls: polls}
		case status == http.StatusOK && len(body) > 0:
			return outcome{ok: true, latency: time.Since(start), polls: polls}
		case status != http.StatusFound:
			return outcome{latency: time.Since(start), failure: problemFailure(status, hdr, body), detail: problemDetail(hdr, body), polls: polls}
		}
		t := time.NewTimer(retryAfter(hdr.Get("Retry-After")))
		select {
		case <-ctx.Done():
			t.Stop()
			return outcome{latency: time.Since(start), failure: "timeout", polls: polls}
		case <-t.C:
		}
	}
}
