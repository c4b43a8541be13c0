package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
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
		{errors.New("stopping"), http.StatusServiceUnavailable, "1"},
	} {
		w := httptest.NewRecorder()
		s.writePeerError(w, peer.Peer{ID: 2}, tc.err)
		if w.Code != tc.status || w.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%v: %d Retry-After %q, want %d %q", tc.err, w.Code, w.Header().Get("Retry-After"), tc.status, tc.retry)
		}
	}
}
