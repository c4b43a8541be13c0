package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry"
)

// batchBody encodes statements as a batch request: a CBOR array of byte
// strings.
func batchBody(t testing.TB, stmts ...[]byte) []byte {
	t.Helper()
	b, err := cbor.Marshal(stmts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) postBatch(body []byte) *httptest.ResponseRecorder {
	return e.do(http.MethodPost, registry.BatchPath, registry.ContentTypeBatch, body)
}

// batchResults decodes a 200 batch answer strictly.
func batchResults(t testing.TB, w *httptest.ResponseRecorder) []registry.BatchResult {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.Bytes())
	}
	if ct := w.Header().Get("Content-Type"); ct != registry.ContentTypeBatch {
		t.Fatalf("Content-Type %q", ct)
	}
	var rs []registry.BatchResult
	if err := cbor.Unmarshal(w.Body.Bytes(), &rs); err != nil {
		t.Fatalf("the answer does not decode: %v", err)
	}
	return rs
}

// TestBatchBoundsBeforeParsing: a request bad as a whole is one problem,
// and reaches neither the statements' checks nor the ledger. The count and
// the size are refused before the body is parsed: a head that claims too
// many statements is BatchTooLarge though nothing follows it, and an
// oversized body is PayloadTooLarge though it is not CBOR at all.
func TestBatchBoundsBeforeParsing(t *testing.T) {
	iss := newIssuer(t, "bounds")
	good := iss.sign(t, "good")
	tooManyHead := cbor.AppendHead(nil, cbor.MajorArray, 1001) // and nothing else
	indefinite := append([]byte{0x9f}, append(cbor.AppendBytes(nil, good), 0xff)...)
	deep := cbor.AppendHead(nil, cbor.MajorArray, 1)
	for range 20 {
		deep = append(deep, 0x81)
	}
	deep = append(deep, 0x40)
	tagged := append(cbor.AppendHead(nil, cbor.MajorArray, 1), append([]byte{0xd8, 0x18}, cbor.AppendBytes(nil, good)...)...)
	text := append(cbor.AppendHead(nil, cbor.MajorArray, 2), cbor.AppendBytes(nil, good)...)
	text = append(text, 0x61, 'x')
	for _, c := range []struct {
		name        string
		contentType string
		body        []byte
		edit        func(*registry.Service)
		status      int
		title       string
	}{
		{"wrong media type", registry.ContentTypeCOSE, batchBody(t, good), nil, 415, "UnsupportedMediaType"},
		{"no media type", "", batchBody(t, good), nil, 415, "UnsupportedMediaType"},
		{"count over the default, nothing after the head", registry.ContentTypeBatch, tooManyHead, nil, 413, "BatchTooLarge"},
		{"count over a configured bound", registry.ContentTypeBatch, batchBody(t, good, good, good),
			func(s *registry.Service) { s.BatchMaxStatements = 2 }, 413, "BatchTooLarge"},
		{"body over the byte bound, not even CBOR", registry.ContentTypeBatch, bytes.Repeat([]byte{0xff}, 5000),
			func(s *registry.Service) { s.BatchMaxBytes = 4096 }, 413, "PayloadTooLarge"},
		{"body over count × statement size", registry.ContentTypeBatch, batchBody(t, good, good),
			func(s *registry.Service) { s.BatchMaxStatements = 2; s.Policy.MaxStatementBytes = 64 }, 413, "PayloadTooLarge"},
		{"empty body", registry.ContentTypeBatch, nil, nil, 400, "InvalidBatch"},
		{"empty array", registry.ContentTypeBatch, []byte{0x80}, nil, 400, "InvalidBatch"},
		{"a map", registry.ContentTypeBatch, []byte{0xa0}, nil, 400, "InvalidBatch"},
		{"a bare statement", registry.ContentTypeBatch, good, nil, 400, "InvalidBatch"},
		{"indefinite-length array", registry.ContentTypeBatch, indefinite, nil, 400, "InvalidBatch"},
		{"nested too deep", registry.ContentTypeBatch, deep, nil, 400, "InvalidBatch"},
		{"a tagged element", registry.ContentTypeBatch, tagged, nil, 400, "InvalidBatch"},
		{"a text element", registry.ContentTypeBatch, text, nil, 400, "InvalidBatch"},
		{"truncated", registry.ContentTypeBatch, batchBody(t, good)[:100], nil, 400, "InvalidBatch"},
		{"trailing bytes", registry.ContentTypeBatch, append(batchBody(t, good), 0x00), nil, 400, "InvalidBatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.edit)
			w := e.do(http.MethodPost, registry.BatchPath, c.contentType, c.body)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, c.status, w.Body.Bytes())
			}
			if title, _ := decodeProblem(t, w); title != c.title {
				t.Fatalf("title %q, want %q", title, c.title)
			}
			if n := e.ledger.calls(); n != 0 {
				t.Fatalf("a refused batch reached the ledger (%d registrations)", n)
			}
		})
	}
}

// TestBatchMixed: one batch of good statements, refused ones, a duplicate
// within the batch and one registered before is answered 200 with each
// statement's outcome in request order; the good ones are handed to the
// ledger in one call, and their receipts verify; the refused ones carry the
// problem POST /entries answers for them.
func TestBatchMixed(t *testing.T) {
	barred := newIssuer(t, "mallory")
	src := fmt.Sprintf(`export function apply(phdr) { return phdr.cwt.iss === %q ? "mallory is barred" : true; }`, barred.did)
	pol, err := policy.NewRegistrationPolicy(src, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(s *registry.Service) {
		s.CurrentRegistrationPolicy = func() (*registry.RegistrationPolicy, error) {
			return &registry.RegistrationPolicy{Policy: pol, Version: [32]byte{7}}, nil
		}
	})
	iss := newIssuer(t, "alice")
	a, b, c := iss.sign(t, "a"), iss.sign(t, "b"), iss.sign(t, "c")
	if w := e.post(c); w.Code != http.StatusCreated {
		t.Fatalf("registering c first: %d", w.Code)
	}
	tampered := bytes.Clone(b)
	tampered[len(tampered)-1] ^= 1
	stmts := [][]byte{a, tampered, []byte("not cose"), b, a, barred.sign(t, "m"), c}
	rs := batchResults(t, e.postBatch(batchBody(t, stmts...)))
	if len(rs) != len(stmts) {
		t.Fatalf("%d results for %d statements", len(rs), len(stmts))
	}
	wantProblem := map[int]string{1: "InvalidSignature", 2: "NotCOSESign1", 5: "PolicyFailed"}
	for i, r := range rs {
		if title, ok := wantProblem[i]; ok {
			if r.Title != title || r.Detail == "" || r.EntryID != "" || r.Receipt != nil {
				t.Fatalf("result %d: %+v, want problem %s with a detail", i, r, title)
			}
			continue
		}
		le := leafEntry(t, stmts[i])
		if r.Title != "" || r.EntryID != registry.EntryID(le) {
			t.Fatalf("result %d: %+v, want entry %s", i, r, registry.EntryID(le))
		}
		checkReceipt(t, e, r.Receipt, stmts[i])
		if g := e.get("/entries/" + r.TxID); g.Code != http.StatusOK {
			t.Fatalf("result %d: GET /entries/%s: %d", i, r.TxID, g.Code)
		}
	}
	if rs[4].TxID != rs[0].TxID {
		t.Fatalf("the duplicate within the batch is at %s, its first at %s", rs[4].TxID, rs[0].TxID)
	}
	if rs[6].TxID != "2.1" {
		t.Fatalf("the statement registered before is answered at %s, want its existing 2.1", rs[6].TxID)
	}
	e.ledger.mu.Lock()
	calls, registered := e.ledger.registerManyCalls, len(e.ledger.registered)
	e.ledger.mu.Unlock()
	if calls != 1 {
		t.Fatalf("the batch made %d ledger submissions, want 1", calls)
	}
	if registered != 3 { // c by POST /entries, then a and b
		t.Fatalf("the ledger holds %d statements, want 3", registered)
	}
}

// TestBatchReceiptNotReady: statements accepted whose checkpoint does not
// come within the wait are answered with their entry id and no receipt, as
// POST /entries answers 303; the receipt is served at /entries/{id} once a
// checkpoint covers them.
func TestBatchReceiptNotReady(t *testing.T) {
	e := newEnv(t, func(s *registry.Service) { s.Wait = 50 * time.Millisecond })
	e.ledger.set(func(f *fakeLedger) { f.manualCheckpoints = true })
	iss := newIssuer(t, "slow")
	stmts := [][]byte{iss.sign(t, "1"), iss.sign(t, "2")}
	rs := batchResults(t, e.postBatch(batchBody(t, stmts...)))
	for i, r := range rs {
		le := leafEntry(t, stmts[i])
		if r.EntryID != registry.EntryID(le) || r.Receipt != nil || r.Title != "" {
			t.Fatalf("result %d: %+v, want entry id only", i, r)
		}
	}
	e.ledger.checkpoint()
	for i, r := range rs {
		g := e.get("/entries/" + r.EntryID)
		if g.Code != http.StatusOK {
			t.Fatalf("GET /entries/%s: %d", r.EntryID, g.Code)
		}
		checkReceipt(t, e, g.Body.Bytes(), stmts[i])
	}
}

// TestBatchLedgerRefuses: a ledger error is each accepted statement's
// problem (retryable ServiceUnavailable), beside the refused statements'
// own problems.
func TestBatchLedgerRefuses(t *testing.T) {
	e := newEnv(t, nil)
	e.ledger.set(func(f *fakeLedger) { f.registerErr = ledger.ErrOverloaded })
	iss := newIssuer(t, "busy")
	rs := batchResults(t, e.postBatch(batchBody(t, iss.sign(t, "1"), []byte{0xd2})))
	if rs[0].Title != "ServiceUnavailable" || rs[1].Title == "" || rs[1].Title == "ServiceUnavailable" {
		t.Fatalf("results %+v", rs)
	}
}

// TestBatchStatementTooLarge: a statement over max_statement_bytes is its
// own PayloadTooLarge, as POST /entries answers it; the batch around it
// goes on.
func TestBatchStatementTooLarge(t *testing.T) {
	iss := newIssuer(t, "sizes")
	small, big := iss.sign(t, "s"), iss.sign(t, string(make([]byte, 2000)))
	e := newEnv(t, func(s *registry.Service) { s.Policy.MaxStatementBytes = len(small) + 10 })
	rs := batchResults(t, e.postBatch(batchBody(t, small, big)))
	if rs[0].Title != "" || len(rs[0].Receipt) == 0 || rs[1].Title != "PayloadTooLarge" {
		t.Fatalf("results %+v", rs)
	}
}

// TestBatchClientGone: a request whose client has gone checks no more
// statements and registers nothing.
func TestBatchClientGone(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := e.svc.CheckBatch(ctx, mixedStatements(t, 8))
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if g != "problem: ClientClosedRequest" {
			t.Fatalf("statement %d: %q after the client left", i, g)
		}
	}
}

// TestBatchParallelMatchesSerial: the statements' checks give the same
// answers, in the same order, whether one worker checks them or many.
func TestBatchParallelMatchesSerial(t *testing.T) {
	stmts := mixedStatements(t, 64)
	var answers [][]string
	for _, workers := range []int{1, 3, 16} {
		e := newEnv(t, func(s *registry.Service) { s.BatchWorkers = workers })
		got, err := e.svc.CheckBatch(context.Background(), stmts)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, got)
	}
	for _, a := range answers[1:] {
		if !slices.Equal(a, answers[0]) {
			t.Fatalf("parallel checks answered\n%q\nserial ones\n%q", a, answers[0])
		}
	}
	problems := 0
	for _, a := range answers[0] {
		if len(a) > 8 && a[:8] == "problem:" {
			problems++
		}
	}
	if problems != 64/4 {
		t.Fatalf("%d problems among 64, want every fourth statement refused", problems)
	}
}

// mixedStatements is n statements by four issuers; every fourth has a
// broken signature.
func mixedStatements(t testing.TB, n int) [][]byte {
	t.Helper()
	issuers := []*issuerChain{newIssuer(t, "p0"), newIssuer(t, "p1"), newIssuer(t, "p2"), newIssuer(t, "p3")}
	out := make([][]byte, n)
	for i := range out {
		out[i] = issuers[i%4].sign(t, fmt.Sprint("statement ", i))
		if i%4 == 3 {
			out[i][len(out[i])-1] ^= 1
		}
	}
	return out
}

// BenchmarkBatchVerify checks a batch of 256 ES256 statements with one
// worker and with GOMAXPROCS workers: the parallel one should approach
// GOMAXPROCS times the serial rate on an idle machine.
func BenchmarkBatchVerify(b *testing.B) {
	iss := newIssuer(b, "bench")
	stmts := make([][]byte, 256)
	for i := range stmts {
		stmts[i] = iss.sign(b, fmt.Sprint("bench statement ", i))
	}
	for _, c := range []struct {
		name    string
		workers int
	}{{"serial", 1}, {"parallel", 0}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b, func(s *registry.Service) { s.BatchWorkers = c.workers })
			b.ResetTimer()
			for range b.N {
				if _, err := e.svc.CheckBatch(context.Background(), stmts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(stmts))/b.Elapsed().Seconds(), "statements/s")
		})
	}
}

// TestDecodeBatchSubslices: the statements DecodeBatch returns are the
// request's bytes, byte for byte, whatever length their heads encode.
func TestDecodeBatchSubslices(t *testing.T) {
	iss := newIssuer(t, "slices")
	s1, s2 := iss.sign(t, "1"), make([]byte, 300)
	body := batchBody(t, s1, s2, []byte{})
	got, err := registry.DecodeBatch(body, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[0], s1) || !bytes.Equal(got[1], s2) || len(got[2]) != 0 {
		t.Fatalf("DecodeBatch split %d statements wrongly", len(got))
	}
	if _, err := cose.ParseStatement(got[0], cose.ParseOptions{}); err != nil {
		t.Fatal(err)
	}
}
