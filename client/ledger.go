package client

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/log"
)

// LedgerRange fetches the committed transaction records with seqnos from
// to to (inclusive) from GET /node/ledger/range. The service returns at
// most 1000 records a call and none past its ledger size, so the result may
// be a prefix of the range; size is the node's ledger size
// (Charter-Ledger-Size). The records are checked to be exactly the seqnos
// from, from+1, … in order, so a caller can page on len(recs).
func (c *Client) LedgerRange(ctx context.Context, from, to uint64) (recs []*log.Record, size uint64, err error) {
	if from == 0 || to < from {
		return nil, 0, fmt.Errorf("ledger range %d..%d: want 1 ≤ from ≤ to", from, to)
	}
	q := "/node/ledger/range?from=" + strconv.FormatUint(from, 10) + "&to=" + strconv.FormatUint(to, 10)
	resp, body, err := c.do(ctx, http.MethodGet, q, "", nil)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, problemFrom(resp, body)
	}
	size, err = strconv.ParseUint(resp.Header.Get("Charter-Ledger-Size"), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("ledger range %d..%d: the answer has no valid Charter-Ledger-Size header", from, to)
	}
	var raws []cbor.RawMessage
	if err := ledgerDec.Unmarshal(body, &raws); err != nil {
		return nil, 0, fmt.Errorf("ledger range %d..%d: the answer is not a CBOR array: %w", from, to, err)
	}
	if uint64(len(raws)) > to-from+1 {
		return nil, 0, fmt.Errorf("ledger range %d..%d: the service sent %d records", from, to, len(raws))
	}
	recs = make([]*log.Record, len(raws))
	for i, raw := range raws {
		r, err := log.UnmarshalRecord(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("ledger range %d..%d: record %d: %w", from, to, i, err)
		}
		if want := from + uint64(i); r.Seqno != want {
			return nil, 0, fmt.Errorf("ledger range %d..%d: record %d has seqno %d, want %d", from, to, i, r.Seqno, want)
		}
		recs[i] = r
	}
	return recs, size, nil
}

// FetchLedger downloads the records from..to (inclusive) page by page. to
// = 0 means up to the ledger's size when the first page is fetched. It
// fails if the service stops short of to; progress, if non-nil, is called
// after each page with the last seqno fetched and the target.
func (c *Client) FetchLedger(ctx context.Context, from, to uint64, progress func(done, target uint64)) ([]*log.Record, error) {
	if from == 0 {
		return nil, fmt.Errorf("ledger export: from must be ≥ 1")
	}
	if to != 0 && to < from {
		return nil, fmt.Errorf("ledger export: to %d is before from %d", to, from)
	}
	var all []*log.Record
	for next := from; to == 0 || next <= to; {
		end := to
		if end == 0 {
			end = next + maxRangePage - 1
		}
		recs, size, err := c.LedgerRange(ctx, next, end)
		if err != nil {
			return nil, err
		}
		if to == 0 {
			if size < from {
				return nil, fmt.Errorf("ledger export: the ledger has %d transactions, none from %d", size, from)
			}
			to = size
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("ledger export: the service returned no records from %d (ledger size %d, want up to %d)", next, size, to)
		}
		all = append(all, recs...)
		next += uint64(len(recs))
		if progress != nil {
			progress(next-1, to)
		}
	}
	return all, nil
}

// maxRangePage is the page the service serves (internal/node maxRangeRecords).
const maxRangePage = 1000

// TransactionReceipt fetches the receipt of a committed transaction (GET
// /node/receipt), for VerifyTransaction.
func (c *Client) TransactionReceipt(ctx context.Context, txid log.TxID) ([]byte, error) {
	return c.get(ctx, "/node/receipt?transaction_id="+txid.String())
}

// Quotes fetches every node's recorded evidence (GET /node/quotes, JSON).
func (c *Client) Quotes(ctx context.Context) ([]byte, error) { return c.get(ctx, "/node/quotes") }

// ledgerDec reads a page of records under the CBOR policy with the ledger's
// bounds: a page may hold more records than the policy allows elements in
// one message from outside.
var ledgerDec = cbor.NewDecMode(cbor.LedgerOptions())
