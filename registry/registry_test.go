package registry_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	clog "github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	gocose "github.com/veraison/go-cose"
)

var entryLocation = regexp.MustCompile(`^/entries/[0-9a-f]{64}$`)

// checkReceipt verifies a 201/200 body as a receipt for stmt.
func checkReceipt(t *testing.T, e *env, body []byte, stmt []byte) *cose.VerifiedReceipt {
	t.Helper()
	le := leafEntry(t, stmt)
	v, err := cose.VerifyInclusion(body, le[:], e.ledger.keys)
	if err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	if v.Claims.Issuer != testIssuer {
		t.Fatalf("receipt iss %q", v.Claims.Issuer)
	}
	return v
}

func TestPostEntryCreated(t *testing.T) {
	e := newEnv(t, nil)
	iss := newIssuer(t, "alice")
	for i := range 5 {
		stmt := iss.sign(t, fmt.Sprint("statement ", i))
		w := e.post(stmt)
		if w.Code != http.StatusCreated {
			t.Fatalf("POST: %d %q", w.Code, w.Body.Bytes())
		}
		if ct := w.Header().Get("Content-Type"); ct != registry.ContentTypeReceipt {
			t.Errorf("Content-Type %q", ct)
		}
		le := leafEntry(t, stmt)
		loc := w.Header().Get("Location")
		if !entryLocation.MatchString(loc) || loc != "/entries/"+hex.EncodeToString(le[:]) || loc != "/entries/"+registry.EntryID(le) {
			t.Errorf("Location %q, want /entries/%x", loc, le)
		}
		if txid := w.Header().Get("X-Charter-Transaction-Id"); txid != fmt.Sprintf("2.%d", i+1) {
			t.Errorf("X-Charter-Transaction-Id %q, want 2.%d", txid, i+1)
		}
		v := checkReceipt(t, e, w.Body.Bytes(), stmt)
		if v.LeafIndex != uint64(i) {
			t.Errorf("receipt leaf index %d, want %d", v.LeafIndex, i)
		}
		// The receipt does not verify another statement.
		other := leafEntry(t, iss.sign(t, "other"))
		if _, err := cose.VerifyInclusion(w.Body.Bytes(), other[:], e.ledger.keys); err == nil {
			t.Error("receipt verifies for another statement")
		}
		// GET of the Location gives a receipt too, by entry id and by txid.
		for _, path := range []string{loc, "/entries/" + w.Header().Get("X-Charter-Transaction-Id")} {
			g := e.get(path)
			if g.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %q", path, g.Code, g.Body.Bytes())
			}
			checkReceipt(t, e, g.Body.Bytes(), stmt)
		}
		// The transparent statement carries the statement and a receipt.
		g := e.get(loc + "/statement")
		if g.Code != http.StatusOK {
			t.Fatalf("GET statement: %d %q", g.Code, g.Body.Bytes())
		}
		s, rs, err := cose.SplitTransparentStatement(g.Body.Bytes())
		if err != nil || len(rs) != 1 {
			t.Fatalf("transparent statement: %d receipts, %v", len(rs), err)
		}
		if le2 := leafEntry(t, s); le2 != le {
			t.Fatal("transparent statement holds another statement")
		}
		checkReceipt(t, e, rs[0], stmt)
	}
	if n := e.ledger.calls(); n != 5 {
		t.Errorf("Register called %d times, want 5", n)
	}
}

func TestPostEntrySeeOther(t *testing.T) {
	e := newEnv(t, func(s *registry.Service) { s.Wait = 50 * time.Millisecond })
	e.ledger.set(func(f *fakeLedger) { f.manualCheckpoints = true })
	stmt := newIssuer(t, "bob").sign(t, "slow")
	start := time.Now()
	w := e.post(stmt)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("POST with no checkpoint in time: %d %q, want 303", w.Code, w.Body.Bytes())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("303 after %v; Wait is 50ms", d)
	}
	loc := w.Header().Get("Location")
	if !entryLocation.MatchString(loc) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("303 headers: Location %q, Retry-After %q", loc, w.Header().Get("Retry-After"))
	}
	// Registered but not yet covered: 302 with Location and Retry-After.
	g := e.get(loc)
	if g.Code != http.StatusFound || g.Header().Get("Location") != loc || g.Header().Get("Retry-After") == "" {
		t.Fatalf("GET before a checkpoint: %d, Location %q, Retry-After %q", g.Code, g.Header().Get("Location"), g.Header().Get("Retry-After"))
	}
	e.ledger.checkpoint()
	g = e.get(loc)
	if g.Code != http.StatusOK {
		t.Fatalf("GET after a checkpoint: %d %q", g.Code, g.Body.Bytes())
	}
	checkReceipt(t, e, g.Body.Bytes(), stmt)
	if g.Header().Get("Cache-Control") == "" {
		t.Error("receipt without Cache-Control")
	}
}

// A Register that does not return before the deadline is also a 303: the
// registration may still be sequenced.
func TestPostEntryRegisterBlocks(t *testing.T) {
	e := newEnv(t, func(s *registry.Service) { s.Wait = 50 * time.Millisecond })
	e.ledger.set(func(f *fakeLedger) { f.blockRegister = true })
	stmt := newIssuer(t, "carol").sign(t, "blocked")
	w := e.post(stmt)
	if w.Code != http.StatusSeeOther || !entryLocation.MatchString(w.Header().Get("Location")) {
		t.Fatalf("POST with a blocked Register: %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	// While the fake still reports it in flight, GET says 302.
	le := leafEntry(t, stmt)
	e.ledger.set(func(f *fakeLedger) { f.pending[le] = true })
	if g := e.get(w.Header().Get("Location")); g.Code != http.StatusFound {
		t.Fatalf("GET of a pending entry: %d", g.Code)
	}
	// Once no longer pending and never registered: 404.
	e.ledger.set(func(f *fakeLedger) { delete(f.pending, le) })
	g := e.get(w.Header().Get("Location"))
	if g.Code != http.StatusNotFound {
		t.Fatalf("GET of a lost registration: %d", g.Code)
	}
	if title, _ := decodeProblem(t, g); title != "NotFound" {
		t.Fatalf("title %q", title)
	}
}

func TestPostEntryUnavailable(t *testing.T) {
	for _, c := range []struct {
		name     string
		register error // Register fails, nothing persisted
		wait     error // Register persists, then the wait fails
	}{
		{"overloaded", ledger.ErrOverloaded, nil},
		{"not leader", ledger.ErrNotLeader, nil},
		{"dropped", fmt.Errorf("raft: %w", ledger.ErrDropped), nil},
		{"stopped", ledger.ErrStopped, nil},
		{"registered, wait stopped", nil, ledger.ErrStopped},
		{"registered, wait dropped", nil, fmt.Errorf("leader change: %w", ledger.ErrDropped)},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.ledger.set(func(f *fakeLedger) {
				f.registerErr, f.waitErr, f.manualCheckpoints = c.register, c.wait, c.wait != nil
			})
			stmt := newIssuer(t, "dave").sign(t, c.name)
			w := e.post(stmt)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Fatalf("POST: %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
			}
			if title, _ := decodeProblem(t, w); title != "ServiceUnavailable" {
				t.Fatalf("title %q", title)
			}
			if e.ledger.calls() != 1 {
				t.Fatalf("Register called %d times", e.ledger.calls())
			}
			le := leafEntry(t, stmt)
			g := e.get("/entries/" + registry.EntryID(le))
			if c.register != nil {
				// Nothing was persisted: the entry is unknown.
				if g.Code != http.StatusNotFound {
					t.Fatalf("GET after a refused Register: %d", g.Code)
				}
				return
			}
			// Registered, but the wait errored: the entry exists and is
			// not covered yet; a checkpoint later gives its receipt.
			if g.Code != http.StatusFound {
				t.Fatalf("GET after a failed wait: %d, want 302", g.Code)
			}
			e.ledger.checkpoint()
			g = e.get("/entries/" + registry.EntryID(le))
			if g.Code != http.StatusOK {
				t.Fatalf("GET after the checkpoint: %d", g.Code)
			}
			checkReceipt(t, e, g.Body.Bytes(), stmt)
		})
	}
}

// An unknown error from the ledger is a 500 that does not leak its text.
func TestPostEntryInternalError(t *testing.T) {
	e := newEnv(t, nil)
	e.ledger.set(func(f *fakeLedger) { f.registerErr = errSecret })
	w := e.post(newIssuer(t, "erin").sign(t, "x"))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("POST: %d", w.Code)
	}
	title, detail := decodeProblem(t, w)
	if title != "InternalError" || strings.Contains(detail, "secret") || strings.Contains(w.Body.String(), "pebble") {
		t.Fatalf("500 problem %q %q leaks or misnames", title, detail)
	}
}

func TestPostEntryRejected(t *testing.T) {
	iss := newIssuer(t, "frank")
	good := iss.sign(t, "good")
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1 // last signature byte
	untagged := good[1:]           // drop tag 18 (0xd2)
	if good[0] != 0xd2 {
		t.Fatalf("test setup: statement starts with %x", good[0])
	}
	for _, c := range []struct {
		name        string
		contentType string
		body        []byte
		max         int
		status      int
		title       string
	}{
		{"no content type", "", good, 0, 415, "UnsupportedMediaType"},
		{"json", "application/json", good, 0, 415, "UnsupportedMediaType"},
		{"cbor", "application/cbor", good, 0, 415, "UnsupportedMediaType"},
		{"bad media type", "application/cose;;", good, 0, 415, "UnsupportedMediaType"},
		{"too large", registry.ContentTypeCOSE, good, 64, 413, "PayloadTooLarge"},
		{"empty", registry.ContentTypeCOSE, nil, 0, 400, ""},
		{"garbage", registry.ContentTypeCOSE, []byte("not cbor at all"), 0, 400, ""},
		{"untagged", registry.ContentTypeCOSE, untagged, 0, 400, "UntaggedCOSESign1"},
		{"bad signature", registry.ContentTypeCOSE, tampered, 0, 400, "InvalidSignature"},
		{"truncated", registry.ContentTypeCOSE, good[:len(good)/2], 0, 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(s *registry.Service) {
				if c.max > 0 {
					s.Policy.MaxStatementBytes = c.max
				}
			})
			w := e.do(http.MethodPost, "/entries", c.contentType, c.body)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d; body %q", w.Code, c.status, w.Body.Bytes())
			}
			title, _ := decodeProblem(t, w)
			if c.title != "" && title != c.title {
				t.Fatalf("title %q, want %q", title, c.title)
			}
			if n := e.ledger.calls(); n != 0 {
				t.Fatalf("rejected input reached Register (%d calls)", n)
			}
		})
	}
	t.Run("content type with parameters", func(t *testing.T) {
		e := newEnv(t, nil)
		if w := e.do(http.MethodPost, "/entries", "application/cose; cose-type=\"cose-sign1\"", good); w.Code != http.StatusCreated {
			t.Fatalf("status %d", w.Code)
		}
	})
	t.Run("algorithm not allowed", func(t *testing.T) {
		e := newEnv(t, func(s *registry.Service) { s.Policy.AllowedAlgs = []gocose.Algorithm{gocose.AlgorithmEdDSA} })
		w := e.post(good)
		if title, _ := decodeProblem(t, w); w.Code != 400 || title != "AlgorithmNotAllowed" {
			t.Fatalf("%d %q", w.Code, title)
		}
		if e.ledger.calls() != 0 {
			t.Fatal("reached Register")
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		e := newEnv(t, func(s *registry.Service) { s.Policy.TrustedCAs = [][32]byte{{1}} })
		w := e.post(good)
		if title, _ := decodeProblem(t, w); w.Code != 400 || title != "InvalidCertificateChain" {
			t.Fatalf("%d %q", w.Code, title)
		}
		if e.ledger.calls() != 0 {
			t.Fatal("reached Register")
		}
	})
}

func TestGetEntryIDs(t *testing.T) {
	e := newEnv(t, nil)
	stmt := newIssuer(t, "gina").sign(t, "g")
	if w := e.post(stmt); w.Code != http.StatusCreated {
		t.Fatal(w.Code)
	}
	for _, c := range []struct {
		id     string
		status int
		title  string
	}{
		{"2.1", 200, ""},
		{"1.1", 404, "NotFound"}, // right seqno, wrong view
		{"2.2", 404, "NotFound"},
		{strings.Repeat("0", 64), 404, "NotFound"},
		{strings.Repeat("z", 64), 400, "InvalidEntryId"},
		{strings.Repeat("A", 63), 400, "InvalidEntryId"},
		{"0.1", 400, "InvalidEntryId"},
		{"2.01", 400, "InvalidEntryId"},
		{"abc", 400, "InvalidEntryId"},
		{"2.1.1", 400, "InvalidEntryId"},
	} {
		w := e.get("/entries/" + c.id)
		if w.Code != c.status {
			t.Errorf("GET /entries/%s: %d, want %d", c.id, w.Code, c.status)
			continue
		}
		if c.status == 200 {
			checkReceipt(t, e, w.Body.Bytes(), stmt)
			continue
		}
		if title, _ := decodeProblem(t, w); title != c.title {
			t.Errorf("GET /entries/%s: title %q, want %q", c.id, title, c.title)
		}
		if s := e.get("/entries/" + c.id + "/statement"); s.Code != c.status {
			t.Errorf("GET /entries/%s/statement: %d, want %d", c.id, s.Code, c.status)
		}
	}
	// Entry ids are canonical lower-case hex (spec/api.md): the upper-case
	// spelling of a known entry is refused, not a second URL for it.
	le := leafEntry(t, stmt)
	w := e.get("/entries/" + strings.ToUpper(registry.EntryID(le)))
	if title, _ := decodeProblem(t, w); w.Code != 400 || title != "InvalidEntryId" {
		t.Errorf("GET by uppercase entry id: %d %q, want 400 InvalidEntryId", w.Code, title)
	}
}

func TestProblemFor(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		title  string
		retry  bool
	}{
		{cose.ErrTooLarge, 413, "PayloadTooLarge", false},
		{cose.ErrUntagged, 400, "UntaggedCOSESign1", false},
		{cose.ErrNotCOSE, 400, "NotCOSESign1", false},
		{cose.ErrBadHeader, 400, "InvalidProtectedHeader", false},
		{cose.ErrMissingCWTClaims, 400, "MissingCWTClaims", false},
		{cose.ErrAlgorithmNotAllowed, 400, "AlgorithmNotAllowed", false},
		{cose.ErrMissingKey, 400, "MissingIssuerKey", false},
		{cose.ErrBadChain, 400, "InvalidCertificateChain", false},
		{cose.ErrIssuerMismatch, 400, "IssuerMismatch", false},
		{cose.ErrUnknownIssuerKey, 400, "UnknownIssuerKey", false},
		{cose.ErrBadSignature, 400, "InvalidSignature", false},
		{cose.ErrDetachedPayload, 400, "DetachedPayload", false},
		{ledger.ErrOverloaded, 503, "ServiceUnavailable", true},
		{ledger.ErrNotLeader, 503, "ServiceUnavailable", true},
		{ledger.ErrDropped, 503, "ServiceUnavailable", true},
		{ledger.ErrStopped, 503, "ServiceUnavailable", true},
		{ledger.ErrNotFound, 404, "NotFound", false},
		{context.Canceled, 499, "ClientClosedRequest", false},
	} {
		for _, err := range []error{c.err, fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.err)), errors.Join(errors.New("other"), c.err)} {
			p := registry.ProblemFor(err)
			if p.Status != c.status || p.Title != c.title || (p.RetryAfter > 0) != c.retry {
				t.Errorf("ProblemFor(%v) = %d %q retry %d; want %d %q retry %v", err, p.Status, p.Title, p.RetryAfter, c.status, c.title, c.retry)
			}
			w := httptest.NewRecorder()
			registry.WriteProblem(w, p)
			if w.Code != c.status || (w.Header().Get("Retry-After") != "") != c.retry {
				t.Errorf("WriteProblem(%v): %d, Retry-After %q", err, w.Code, w.Header().Get("Retry-After"))
			}
			title, detail := decodeProblem(t, w)
			if title != c.title || detail != err.Error() {
				t.Errorf("WriteProblem(%v) body: %q %q", err, title, detail)
			}
			if got := registry.DecodeProblem(w.Code, w.Body.Bytes()); got.Title != c.title || got.Detail != err.Error() {
				t.Errorf("DecodeProblem: %+v", got)
			}
		}
	}
	// Unknown errors: 500 without the message.
	for _, err := range []error{errSecret, fmt.Errorf("wrapped: %w", errSecret), context.DeadlineExceeded} {
		p := registry.ProblemFor(err)
		if p.Status != 500 || p.Title != "InternalError" || strings.Contains(p.Detail, "secret") || strings.Contains(p.Detail, "deadline") {
			t.Errorf("ProblemFor(%v) = %+v", err, p)
		}
	}
	// A *Problem passes through, wrapped or not.
	own := &registry.Problem{Status: 418, Title: "Teapot", Detail: "d"}
	if p := registry.ProblemFor(fmt.Errorf("x: %w", own)); p != own {
		t.Errorf("ProblemFor(wrapped *Problem) = %+v", p)
	}
	// A body that is not a problem still gives something to show.
	if p := registry.DecodeProblem(502, []byte("<html>bad gateway</html>")); p.Title != http.StatusText(502) || p.Detail == "" {
		t.Errorf("DecodeProblem(html) = %+v", p)
	}
}

func TestConsistencyEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	// No checkpoint yet, and `to` defaults to the newest: 404.
	if w := e.get("/proofs/consistency?from=1"); w.Code != http.StatusNotFound {
		t.Fatalf("consistency before any checkpoint: %d", w.Code)
	}
	iss := newIssuer(t, "hank")
	for i := range 7 {
		if w := e.post(iss.sign(t, fmt.Sprint(i))); w.Code != http.StatusCreated {
			t.Fatal(w.Code)
		}
	}
	for _, q := range []string{
		"", "from=", "from=0", "from=-1", "from=x", "from=1&to=0", "from=1&to=x",
		"from=5&to=3", "from=8", "from=1&to=100", "from=18446744073709551616",
	} {
		w := e.get("/proofs/consistency?" + q)
		if w.Code != http.StatusBadRequest {
			t.Errorf("consistency?%s: %d %q, want 400", q, w.Code, w.Body.Bytes())
			continue
		}
		if title, _ := decodeProblem(t, w); title != "InvalidInput" {
			t.Errorf("consistency?%s: title %q", q, title)
		}
	}
	// Every checkpoint size is a valid `to`; every from <= to verifies.
	for to := uint64(1); to <= 7; to++ {
		for from := uint64(1); from <= to; from++ {
			q := fmt.Sprintf("from=%d&to=%d", from, to)
			if to == 7 && from%2 == 0 {
				q = fmt.Sprintf("from=%d", from) // default to: the newest
			}
			w := e.get("/proofs/consistency?" + q)
			if w.Code != http.StatusOK {
				t.Fatalf("consistency?%s: %d %q", q, w.Code, w.Body.Bytes())
			}
			v, err := cose.VerifyConsistency(w.Body.Bytes(), from, e.ledger.rootAt(from), e.ledger.keys)
			if err != nil {
				t.Fatalf("consistency?%s does not verify: %v", q, err)
			}
			if !bytes.Equal(v.Root, e.ledger.rootAt(to)) {
				t.Fatalf("consistency?%s leads to another root", q)
			}
		}
	}
}

func TestCheckpointEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	w := e.get("/checkpoint")
	if w.Code != http.StatusNotFound {
		t.Fatalf("checkpoint before any: %d", w.Code)
	}
	if title, _ := decodeProblem(t, w); title != "NotFound" {
		t.Fatalf("title %q", title)
	}
	k := e.get("/checkpoint/key")
	if k.Code != 200 || strings.TrimSpace(k.Body.String()) != e.ledger.nk.vkey {
		t.Fatalf("checkpoint key: %d %q", k.Code, k.Body.String())
	}
	for range 3 {
		e.post(newIssuer(t, "ivy").sign(t, "x"))
	}
	w = e.get("/checkpoint")
	if w.Code != 200 {
		t.Fatalf("checkpoint: %d", w.Code)
	}
	p, err := clog.OpenCheckpointNote(w.Body.Bytes(), e.ledger.nk.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size != 3 || !bytes.Equal(p.Root[:], e.ledger.rootAt(3)) || p.Origin != testIssuer {
		t.Fatalf("checkpoint %+v", p)
	}
}

func TestKeysEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	want := e.ledger.keys[0]
	w := e.get("/.well-known/scitt-keys")
	if w.Code != 200 || w.Header().Get("Content-Type") != registry.ContentTypeKeySet {
		t.Fatalf("key set: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	ks, err := cose.ParseKeySet(w.Body.Bytes())
	if err != nil || len(ks) != 1 || !bytes.Equal(ks[0].Kid, want.Kid) || ks[0].Alg != want.Alg {
		t.Fatalf("key set: %v, %v", ks, err)
	}
	for _, kid := range []string{string(want.Kid), strings.ToUpper(string(want.Kid))} {
		w = e.get("/.well-known/scitt-keys/" + kid)
		if w.Code != 200 || w.Header().Get("Content-Type") != registry.ContentTypeKey {
			t.Fatalf("key %s: %d", kid, w.Code)
		}
		k, err := cose.ParseCOSEKey(w.Body.Bytes())
		if err != nil || !bytes.Equal(k.Kid, want.Kid) {
			t.Fatalf("key: %v %v", k, err)
		}
	}
	for _, kid := range []string{strings.Repeat("0", 64), "nope", string(want.Kid[:63])} {
		w = e.get("/.well-known/scitt-keys/" + kid)
		if w.Code != 404 {
			t.Fatalf("unknown kid %s: %d", kid, w.Code)
		}
		if title, _ := decodeProblem(t, w); title != "NotFound" {
			t.Fatalf("title %q", title)
		}
	}
	w = e.get("/jwks")
	if w.Code != 200 {
		t.Fatalf("jwks: %d", w.Code)
	}
	jk, err := cose.ParseJWKS(w.Body.Bytes())
	if err != nil || len(jk) != 1 || !bytes.Equal(jk[0].Kid, want.Kid) {
		t.Fatalf("jwks: %v %v", jk, err)
	}
}

func TestTransparencyConfiguration(t *testing.T) {
	e := newEnv(t, func(s *registry.Service) {
		s.Policy.MaxStatementBytes = 4096
		s.Policy.AllowedAlgs = []gocose.Algorithm{gocose.AlgorithmEdDSA}
	})
	check := func(c registry.TransparencyConfiguration) {
		t.Helper()
		if c.Issuer != testIssuer || c.RegistrationEndpoint != "/entries" || c.JWKSURI != "/jwks" ||
			c.KeysURI != "/.well-known/scitt-keys" || c.CheckpointURI != "/checkpoint" ||
			c.NoteVerifierKey != e.ledger.nk.vkey || c.MaxStatementBytes != 4096 ||
			len(c.SupportedAlgorithms) != 1 || c.SupportedAlgorithms[0] != "EdDSA" {
			t.Fatalf("configuration %+v", c)
		}
	}
	w := e.get("/.well-known/transparency-configuration")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/cbor" {
		t.Fatalf("CBOR configuration: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var c registry.TransparencyConfiguration
	if err := cose.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	check(c)
	w = e.get("/.well-known/transparency-configuration", "Accept", "application/json")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("JSON configuration: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	c = registry.TransparencyConfiguration{}
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	check(c)
	// No policy algorithms: every supported one is advertised.
	e = newEnv(t, nil)
	w = e.get("/.well-known/transparency-configuration", "Accept", "application/json")
	c = registry.TransparencyConfiguration{}
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil || len(c.SupportedAlgorithms) != 7 {
		t.Fatalf("default algorithms %v, %v", c.SupportedAlgorithms, err)
	}
}
