package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/charterlog/charter/cbor"
)

// BatchResult is one statement's outcome of RegisterBatch: its
// registration (receipt included), or Err, the service's refusal of it
// (an *Error whose Status is 0: the problem came inside the batch's 200)
// or the reason the client gave up on it.
type BatchResult struct {
	Registration *Registration
	Err          error
}

// batchItem is one element of a batch answer (spec/api.md, POST
// /entries/batch): a registration (positive keys) or concise problem
// details (negative keys).
type batchItem struct {
	EntryID string `cbor:"1,keyasint,omitempty"`
	Receipt []byte `cbor:"2,keyasint,omitempty"`
	TxID    string `cbor:"3,keyasint,omitempty"`
	Title   string `cbor:"-1,keyasint,omitempty"`
	Detail  string `cbor:"-2,keyasint,omitempty"`
}

// retryableTitle is the problem title of a statement the service could
// not sequence now (overloaded, no leader, outcome unknown): it is
// submitted again, as Register retries a 503.
const retryableTitle = "ServiceUnavailable"

// RegisterBatch registers statements with one request to POST
// /entries/batch and returns each one's result in the same order; send at
// most the service's batch bound (1000 statements by default; `charter
// register` splits larger sets with --batch-size). A
// statement the service accepted without a receipt yet, or could not
// sequence now (ServiceUnavailable), is submitted again in the next
// request with the others still open, after the wait Retry-After asks
// (or a backoff): registration is idempotent, so a statement registered
// meanwhile is answered with its existing entry and receipt. A 503 or 429
// for the whole request is retried the same way. It returns an error only
// for a request the service refused as a whole (too many statements, too
// large, malformed) or when ctx ends before any answer; statements still
// open when ctx ends carry ctx's error. Each receipt verifies offline like
// Register's (VerifyTransparentStatement, once attached with
// cose.AttachReceipts).
func (c *Client) RegisterBatch(ctx context.Context, statements [][]byte) ([]BatchResult, error) {
	if len(statements) == 0 {
		return nil, errors.New("client: no statements to register")
	}
	results := make([]BatchResult, len(statements))
	open := make([]int, len(statements)) // indices still without an outcome
	for i := range open {
		open[i] = i
	}
	var wait time.Duration
	answered := false
	for attempt := 0; len(open) > 0; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, c.jitter(wait, attempt)); err != nil {
				if !answered {
					return nil, fmt.Errorf("batch registration not complete: %w", err)
				}
				for _, i := range open {
					results[i].Err = fmt.Errorf("registration not complete: %w", err)
				}
				return results, nil
			}
		}
		batch := make([][]byte, len(open))
		for j, i := range open {
			batch[j] = statements[i]
		}
		body, err := cbor.Marshal(batch)
		if err != nil {
			return nil, err
		}
		_, resp, rbody, err := c.write(ctx, "/entries/batch", "application/cbor", body)
		if err != nil {
			if !answered {
				return nil, err
			}
			for _, i := range open {
				results[i].Err = err
			}
			return results, nil
		}
		wait = retryAfter(resp)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			continue
		default:
			return nil, problemFrom(resp, rbody)
		}
		var items []batchItem
		if err := cbor.Unmarshal(rbody, &items); err != nil {
			return nil, fmt.Errorf("the service's batch answer does not decode: %w", err)
		}
		if len(items) != len(open) {
			return nil, fmt.Errorf("the service answered %d results for %d statements", len(items), len(open))
		}
		answered = true
		var still []int
		for j, it := range items {
			i := open[j]
			switch {
			case it.Title == retryableTitle:
				still = append(still, i)
			case it.Title != "":
				results[i] = BatchResult{Err: &Error{Title: it.Title, Detail: it.Detail}}
			case it.EntryID != "" && len(it.Receipt) > 0:
				results[i] = BatchResult{Registration: &Registration{EntryID: it.EntryID, TxID: it.TxID, Receipt: it.Receipt}}
			case it.EntryID != "":
				// Accepted; the receipt was not ready within the service's
				// wait.
				still = append(still, i)
			default:
				return nil, fmt.Errorf("the service's result %d is neither a registration nor a problem", j)
			}
		}
		if len(still) > 0 && wait == 0 {
			wait = time.Second
		}
		open = still
	}
	return results, nil
}
