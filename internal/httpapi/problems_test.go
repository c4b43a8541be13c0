package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/registry"
)

// A problem's title is a wire name clients match on (CCF's codes): an
// identifier, each error named once. The table is the registry's
// extended by the edge's, so this covers the SCRAPI titles too (whose
// names carry digits: COSESign1).
func TestProblemTitlesAreNames(t *testing.T) {
	name := regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`)
	seen := map[error]bool{}
	for _, m := range problems {
		if !name.MatchString(m.Title) {
			t.Errorf("%v: title %q is not a name", m.Err, m.Title)
		}
		if seen[m.Err] {
			t.Errorf("%v is in the table twice", m.Err)
		}
		seen[m.Err] = true
	}
}

func TestProblemFor(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		title  string
		detail string
		retry  int
	}{
		// A refusal's detail is what it says, whatever its kind's text.
		{&join.Error{Kind: join.ErrRetired, Detail: "node 4 was removed"}, http.StatusForbidden, "NodeRetired", "node 4 was removed", 0},
		{&join.Error{Kind: join.ErrTooManyPending, Detail: "4 nodes"}, http.StatusTooManyRequests, "TooManyPendingNodes", "4 nodes", 5},
		{fmt.Errorf("%w: proposal 7", gov.ErrProposalClosed), http.StatusConflict, "ProposalNotOpen", gov.ErrProposalClosed.Error() + ": proposal 7", 0},
		// What the table does not name is the registry's.
		{fmt.Errorf("committing: %w", ledger.ErrNotLeader), http.StatusServiceUnavailable, "ServiceUnavailable", "committing: " + ledger.ErrNotLeader.Error(), 1},
		{errors.New("disk on fire"), http.StatusInternalServerError, "InternalError", "internal error; see the node's log", 0},
	} {
		p := problemFor(tc.err)
		want := &registry.Problem{Status: tc.status, Title: tc.title, Detail: tc.detail, RetryAfter: tc.retry}
		if *p != *want {
			t.Errorf("problemFor(%v) = %+v, want %+v", tc.err, p, want)
		}
	}
}

// A peer's raft request that replication could not take for a reason of
// its own (not a refusal) is one the peer retries.
func TestWritePeerError(t *testing.T) {
	s := New(Config{Log: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		err    error
		status int
		retry  string
	}{
		{fmt.Errorf("%w: a vote from a learner", replication.ErrForbidden), http.StatusForbidden, ""},
		{fmt.Errorf("%w: truncated", replication.ErrBadMessage), http.StatusBadRequest, ""},
		{fmt.Errorf("%w: misaligned", store.ErrBackfillRange), http.StatusBadRequest, ""},
		{fmt.Errorf("%w: record 7", store.ErrHistoryIncomplete), http.StatusServiceUnavailable, "1"},
		{errors.New("stopping"), http.StatusServiceUnavailable, "1"},
	} {
		w := httptest.NewRecorder()
		s.writePeerError(w, peer.Peer{ID: 2}, tc.err)
		if w.Code != tc.status || w.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%v: %d Retry-After %q, want %d %q", tc.err, w.Code, w.Header().Get("Retry-After"), tc.status, tc.retry)
		}
	}
}

// A historical app request for a transaction below a state image's floor
// is a 503 to retry, not the 500 of a state that cannot be built.
func TestHistoricalErrorInTheGap(t *testing.T) {
	w := httptest.NewRecorder()
	writeHistoricalError(w, fmt.Errorf("apphost: %w", store.ErrHistoryIncomplete), "2.7")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "5" {
		t.Fatalf("%d Retry-After %q, want 503 5", w.Code, w.Header().Get("Retry-After"))
	}
}

// One table, two renderings: the same error is concise problem details on
// a SCITT route and CCF's JSON error on /gov, /node and /app, with CCF's
// code where CCF names the error otherwise (ResourceNotFound), and the
// same status and Retry-After either way.
func TestErrorShapePerRouteFamily(t *testing.T) {
	notFoundErr := fmt.Errorf("entry 7: %w", ledger.ErrNotFound)
	overloaded := fmt.Errorf("queue full: %w", ledger.ErrOverloaded)
	incomplete := fmt.Errorf("ledger: record 7: %w", store.ErrHistoryIncomplete)
	for _, tc := range []struct {
		path  string
		err   error
		ccf   bool
		code  string // the title (problem details) or code (CCF)
		retry string
	}{
		{"/entries/abc", notFoundErr, false, "NotFound", ""},
		{"/node/tx", notFoundErr, true, "ResourceNotFound", ""},
		{"/gov/members/proposals/abc", notFoundErr, true, "ResourceNotFound", ""},
		{"/app/log", notFoundErr, true, "ResourceNotFound", ""},
		{"/gov/members/proposals/abc", fmt.Errorf("%w: proposal abc", gov.ErrProposalClosed), true, "ProposalNotOpen", ""},
		{"/gov/members/proposals:create", govwire.ErrReplay, true, "ProposalReplay", ""},
		{"/node/join", &join.Error{Kind: join.ErrTooManyPending, Detail: "4 nodes"}, true, "TooManyPendingNodes", "5"},
		{"/entries", overloaded, false, "ServiceUnavailable", "1"},
		{"/node/commit", overloaded, true, "ServiceUnavailable", "1"},
		// A read in the gap a state image left (store/history.go).
		{"/entries/abc", incomplete, false, "HistoryIncomplete", "5"},
		{"/tile/0/1", incomplete, false, "HistoryIncomplete", "5"},
		{"/node/receipt", incomplete, true, "HistoryIncomplete", "5"},
		// Prefixes are whole segments: these are not CCF's families.
		{"/nodes", notFoundErr, false, "NotFound", ""},
		{"/government", notFoundErr, false, "NotFound", ""},
		{"/application", notFoundErr, false, "NotFound", ""},
	} {
		w := httptest.NewRecorder()
		want := problemFor(tc.err)
		writeErrorAt(w, tc.path, want)
		if w.Code != want.Status || w.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%s %v: %d Retry-After %q, want %d %q", tc.path, tc.err, w.Code, w.Header().Get("Retry-After"), want.Status, tc.retry)
		}
		ct := w.Header().Get("Content-Type")
		if !tc.ccf {
			p := registry.DecodeProblem(w.Code, w.Body.Bytes())
			if ct != registry.ContentTypeProblem || p.Title != tc.code || p.Detail != want.Detail {
				t.Errorf("%s %v: %s %q, want problem details titled %s", tc.path, tc.err, ct, w.Body.Bytes(), tc.code)
			}
			continue
		}
		var e CCFError
		if err := json.Unmarshal(w.Body.Bytes(), &e); ct != "application/json" || err != nil || e.Error.Code != tc.code || e.Error.Message != want.Detail {
			t.Errorf("%s %v: %s %q, want CCF's JSON error with code %s", tc.path, tc.err, ct, w.Body.Bytes(), tc.code)
		}
	}
}

// A client reads either shape through registry.DecodeProblem.
func TestDecodeProblemReadsCCFErrors(t *testing.T) {
	w := httptest.NewRecorder()
	writeErrorAt(w, "/node/tx", notFound("no transaction 2.7"))
	p := registry.DecodeProblem(w.Code, w.Body.Bytes())
	if p.Status != http.StatusNotFound || p.Title != "ResourceNotFound" || p.Detail != "no transaction 2.7" {
		t.Errorf("DecodeProblem of CCF's error = %+v", p)
	}
}
