package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/client"
)

type item struct {
	EntryID string `cbor:"1,keyasint,omitempty"`
	Receipt []byte `cbor:"2,keyasint,omitempty"`
	TxID    string `cbor:"3,keyasint,omitempty"`
	Title   string `cbor:"-1,keyasint,omitempty"`
	Detail  string `cbor:"-2,keyasint,omitempty"`
}

// batchServer answers POST /entries/batch with answer(request number,
// statements); it records each request's statements.
type batchServer struct {
	mu       sync.Mutex
	requests [][]string
	answer   func(n int, stmts []string) (int, []item)
}

func (s *batchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/entries/batch" || r.Header.Get("Content-Type") != "application/cbor" {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var raw [][]byte
	if err := cbor.Unmarshal(b, &raw); err != nil {
		http.Error(w, err.Error(), http.StatusTeapot)
		return
	}
	stmts := make([]string, len(raw))
	for i, x := range raw {
		stmts[i] = string(x)
	}
	s.mu.Lock()
	s.requests = append(s.requests, stmts)
	n := len(s.requests)
	s.mu.Unlock()
	status, items := s.answer(n, stmts)
	if status != http.StatusOK {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(status)
		return
	}
	out, _ := cbor.Marshal(items)
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(out)
}

// TestRegisterBatch: results come back in the statements' order; a refused
// statement carries its problem; one without a receipt yet and one the
// service could not sequence are submitted again, alone, until they have
// receipts; a 503 for the whole request is retried.
func TestRegisterBatch(t *testing.T) {
	srv := &batchServer{answer: func(n int, stmts []string) (int, []item) {
		switch n {
		case 1:
			return http.StatusOK, []item{
				{EntryID: "id-a", Receipt: []byte("receipt a"), TxID: "2.1"},
				{EntryID: "id-b"},
				{Title: "ServiceUnavailable", Detail: "overloaded"},
				{Title: "InvalidSignature", Detail: "bad"},
			}
		case 2:
			return http.StatusServiceUnavailable, nil
		default:
			out := make([]item, len(stmts))
			for i, s := range stmts {
				out[i] = item{EntryID: "id-" + s, Receipt: []byte("receipt " + s), TxID: "2.9"}
			}
			return http.StatusOK, out
		}
	}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, err := client.New(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MaxBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.RegisterBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "b", "c"} {
		r := res[i]
		if r.Err != nil || r.Registration == nil || r.Registration.EntryID != "id-"+want || string(r.Registration.Receipt) != "receipt "+want {
			t.Fatalf("result %d: %+v %v", i, r.Registration, r.Err)
		}
	}
	var pe *client.Error
	if !errors.As(res[3].Err, &pe) || pe.Title != "InvalidSignature" || pe.Detail != "bad" || res[3].Registration != nil {
		t.Fatalf("result 3: %v, want the InvalidSignature problem", res[3].Err)
	}
	if got := res[3].Err.Error(); got != "InvalidSignature: bad" {
		t.Fatalf("the problem reads %q", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	want := [][]string{{"a", "b", "c", "d"}, {"b", "c"}, {"b", "c"}}
	if !slices.EqualFunc(srv.requests, want, slices.Equal) {
		t.Fatalf("requests %q, want %q", srv.requests, want)
	}
}

// TestRegisterBatchRefused: a batch refused as a whole is RegisterBatch's
// error, with the service's problem; an answer that does not match the
// request is an error too.
func TestRegisterBatchRefused(t *testing.T) {
	problem, _ := cbor.Marshal(map[int]string{-1: "BatchTooLarge", -2: "too many"})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/concise-problem-details+cbor")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = w.Write(problem)
	}))
	defer ts.Close()
	c, _ := client.New(ts.URL, nil)
	_, err := c.RegisterBatch(context.Background(), [][]byte{[]byte("a")})
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Status != 413 || pe.Title != "BatchTooLarge" {
		t.Fatalf("RegisterBatch: %v, want 413 BatchTooLarge", err)
	}
	if _, err := c.RegisterBatch(context.Background(), nil); err == nil {
		t.Fatal("an empty batch was sent")
	}

	short := &batchServer{answer: func(int, []string) (int, []item) { return http.StatusOK, []item{{EntryID: "x", Receipt: []byte("r")}} }}
	ts2 := httptest.NewServer(short)
	defer ts2.Close()
	c2, _ := client.New(ts2.URL, nil)
	if _, err := c2.RegisterBatch(context.Background(), [][]byte{[]byte("a"), []byte("b")}); err == nil {
		t.Fatal("one result for two statements was accepted")
	}
}
