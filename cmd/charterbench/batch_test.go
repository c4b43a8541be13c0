package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

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
	out := registerBatch(ctx, srv.Client(), base, [][]byte{{1}, {2}, {3}}, time.Now())
	if len(out) != 3 || !out[0].ok || out[1].ok || out[1].failure != "200 batch: InvalidSignature" || !out[2].ok || out[2].polls != 2 {
		t.Fatalf("outcomes %+v", out)
	}
	out = registerBatch(ctx, srv.Client(), base, [][]byte{{1}}, time.Now())
	if len(out) != 1 || out[0].ok || out[0].failure != "400 Bad Request" {
		t.Fatalf("a refused batch: %+v", out)
	}
}
