package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/charterlog/charter/log"
	"github.com/fxamacker/cbor/v2"
)

// fakeRange serves GET /node/ledger/range like internal/node: at most page
// records, none past size. mangle, if set, edits a page before it is sent.
func fakeRange(t *testing.T, size uint64, page uint64, mangle func([]*log.Record)) (*Client, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/node/ledger/range" {
			http.NotFound(w, r)
			return
		}
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		if from == 0 || to < from {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if from > size {
			http.Error(w, "past the end", http.StatusNotFound)
			return
		}
		to = min(to, from+page-1, size)
		var recs []*log.Record
		for s := from; s <= to; s++ {
			recs = append(recs, &log.Record{Type: log.TxCheckpoint, View: 2, Seqno: s, Body: []byte("body " + strconv.FormatUint(s, 10))})
		}
		if mangle != nil {
			mangle(recs)
		}
		b, err := cbor.Marshal(recs)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Charter-Ledger-Size", strconv.FormatUint(size, 10))
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

func TestFetchLedgerPages(t *testing.T) {
	c, calls := fakeRange(t, 2500, maxRangePage, nil)
	var last uint64
	recs, err := c.FetchLedger(context.Background(), 1, 0, func(done, target uint64) {
		if target != 2500 || done <= last {
			t.Errorf("progress %d/%d after %d", done, target, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2500 || calls.Load() != 3 || last != 2500 {
		t.Fatalf("%d records in %d calls, last progress %d; want 2500 in 3", len(recs), calls.Load(), last)
	}
	for i, r := range recs {
		if r.Seqno != uint64(i+1) || string(r.Body) != "body "+strconv.Itoa(i+1) {
			t.Fatalf("record %d: seqno %d body %q", i, r.Seqno, r.Body)
		}
	}

	// A sub-range, crossing a page boundary.
	recs, err = c.FetchLedger(context.Background(), 990, 1010, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 21 || recs[0].Seqno != 990 || recs[20].Seqno != 1010 {
		t.Fatalf("got %d records %d..%d", len(recs), recs[0].Seqno, recs[len(recs)-1].Seqno)
	}
}

// A service with smaller pages than the client expects still works: the
// client pages on what it received.
func TestFetchLedgerSmallPages(t *testing.T) {
	c, calls := fakeRange(t, 25, 10, nil)
	recs, err := c.FetchLedger(context.Background(), 3, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 23 || recs[0].Seqno != 3 || recs[22].Seqno != 25 || calls.Load() != 3 {
		t.Fatalf("%d records in %d calls", len(recs), calls.Load())
	}
}

func TestFetchLedgerErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("past the end", func(t *testing.T) {
		c, _ := fakeRange(t, 5, maxRangePage, nil)
		if _, err := c.FetchLedger(ctx, 1, 9, nil); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v, want the service's 404", err)
		}
	})
	t.Run("gap", func(t *testing.T) {
		c, _ := fakeRange(t, 5, maxRangePage, func(r []*log.Record) { r[2].Seqno++ })
		if _, err := c.FetchLedger(ctx, 1, 0, nil); err == nil || !strings.Contains(err.Error(), "record 2 has seqno 4, want 3") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad range", func(t *testing.T) {
		c, calls := fakeRange(t, 5, maxRangePage, nil)
		if _, err := c.FetchLedger(ctx, 0, 3, nil); err == nil {
			t.Fatal("from 0 accepted")
		}
		if _, err := c.FetchLedger(ctx, 4, 3, nil); err == nil {
			t.Fatal("to < from accepted")
		}
		if calls.Load() != 0 {
			t.Fatalf("%d calls for invalid ranges", calls.Load())
		}
	})
}

func TestLedgerRangeNeedsSize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := cbor.Marshal([]*log.Record{{Type: log.TxCheckpoint, View: 1, Seqno: 1}})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.LedgerRange(context.Background(), 1, 1); err == nil || !strings.Contains(err.Error(), "Charter-Ledger-Size") {
		t.Fatalf("err = %v", err)
	}
}
