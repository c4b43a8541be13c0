package httpapi

// The edge's answers to the errors of the packages below it: one table
// (problems) for governance's, the join protocol's and replication's
// sentinels, answered as concise problem details (CCF's JSON on the
// classic governance routes), with the registry's table for the rest;
// apphost's and appauth's in CCF's JSON error shape, as /app is CCF's;
// and a forwarded request's failure, in the shape of its route.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/appauth"
	"github.com/charterlog/charter/internal/apphost"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
)

// problems is the edge's table from the errors of the packages below it
// to concise problem details (CCF's JSON error on the classic governance
// routes, writeCCFError): governance's, the join protocol's refusals, and
// replication's refusals of a peer's message. The detail is the error's
// text. An error the table does not name is the registry's to answer
// (registry.ProblemFor, the SCRAPI routes' table).
var problems = []struct {
	err    error
	status int
	title  string
	retry  int // seconds, for Retry-After
}{
	// gov.Service's operations.
	{gov.ErrMalformed, http.StatusBadRequest, "InvalidGovernanceRequest", 0},
	{gov.ErrWrongType, http.StatusBadRequest, "WrongMessageType", 0},
	{gov.ErrMismatch, http.StatusBadRequest, "RequestDoesNotMatchURL", 0},
	{gov.ErrStale, http.StatusBadRequest, "StaleRequest", 0},
	{gov.ErrBadBallot, http.StatusBadRequest, "InvalidBallot", 0},
	{gov.ErrInvalidProposal, http.StatusBadRequest, "ProposalInvalid", 0},
	{gov.ErrWrongDigest, http.StatusBadRequest, "WrongStateDigest", 0},
	{gov.ErrBadSignature, http.StatusUnauthorized, "InvalidSignature", 0},
	{gov.ErrUnknownMember, http.StatusUnauthorized, "UnknownMember", 0},
	{gov.ErrNotActive, http.StatusForbidden, "MemberNotActive", 0},
	{gov.ErrNotProposer, http.StatusForbidden, "NotProposer", 0},
	{gov.ErrProposalNotFound, http.StatusNotFound, "ProposalNotFound", 0},
	{gov.ErrProposalClosed, http.StatusConflict, "ProposalNotOpen", 0},
	{gov.ErrReplay, http.StatusConflict, "ReplayedRequest", 0},
	{gov.ErrConstitution, http.StatusInternalServerError, "ConstitutionError", 0},
	// join.Leader's refusals (*join.Error, whose text is its detail).
	{join.ErrInvalidRequest, http.StatusBadRequest, "InvalidInput", 0},
	{join.ErrTooLarge, http.StatusRequestEntityTooLarge, "PayloadTooLarge", 0},
	{join.ErrInvalidSignature, http.StatusBadRequest, "InvalidSignature", 0},
	{join.ErrInvalidEvidence, http.StatusBadRequest, "InvalidEvidence", 0},
	{join.ErrAttestation, http.StatusForbidden, "AttestationFailed", 0},
	{join.ErrRetired, http.StatusForbidden, "NodeRetired", 0},
	{join.ErrAddressTaken, http.StatusConflict, "Conflict", 0},
	{join.ErrNotLeader, http.StatusServiceUnavailable, "NotLeader", 1},
	{join.ErrRateLimited, http.StatusTooManyRequests, "TooManyRequests", 1},
	{join.ErrTooManyPending, http.StatusTooManyRequests, "TooManyPendingNodes", 5},
	{join.ErrUnavailable, http.StatusServiceUnavailable, "ServiceUnavailable", 1},
	// replication's refusals of a peer's raft message.
	{replication.ErrForbidden, http.StatusForbidden, "Forbidden", 0},
	{replication.ErrBadMessage, http.StatusBadRequest, "InvalidRaftMessage", 0},
}

// problemFor is err's answer: by the table above, else by the registry's.
func problemFor(err error) *registry.Problem {
	if p := tableProblem(err); p != nil {
		return p
	}
	return registry.ProblemFor(err)
}

// tableProblem is err's answer by the table above, or nil.
func tableProblem(err error) *registry.Problem {
	for _, m := range problems {
		if errors.Is(err, m.err) {
			return &registry.Problem{Status: m.status, Title: m.title, Detail: err.Error(), RetryAfter: m.retry}
		}
	}
	return nil
}

// writePeerError answers a peer's raft request that replication refused
// or could not take (stopping, storage): the peer retries those.
func (s *Server) writePeerError(w http.ResponseWriter, p peer.Peer, err error) {
	if errors.Is(err, replication.ErrForbidden) {
		s.cfg.Log.Warn("refused a peer's request", "peer", p.ID, "err", err)
	}
	pr := tableProblem(err)
	if pr == nil {
		pr = &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1}
	}
	registry.WriteProblem(w, pr)
}

// writeAppError answers in CCF's error shape.
func writeAppError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// writeAuthError answers an app request that appauth did not
// authenticate: 401 with CCF's code when no policy passed, 500 when the
// governed identities could not be read.
func writeAuthError(w http.ResponseWriter, err error) {
	var ae *appauth.Error
	if errors.As(err, &ae) {
		writeAppError(w, http.StatusUnauthorized, ae.Code, ae.Message)
		return
	}
	writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
}

// writeExecuteError answers a request whose handler did not run to a
// committed result (apphost.Execute's errors).
func writeExecuteError(w http.ResponseWriter, err error) {
	var ce *apphost.CommitError
	switch {
	case errors.Is(err, apphost.ErrAbandoned):
		// The client is gone: nothing to answer.
	case errors.Is(err, app.ErrException):
		writeAppError(w, http.StatusInternalServerError, "InternalError", "Exception thrown while executing.")
	case errors.As(err, &ce):
		status, code := http.StatusServiceUnavailable, "ServiceUnavailable"
		if errors.Is(err, ledger.ErrConflict) {
			code = "TransactionConflict"
		}
		w.Header().Set("Retry-After", "1")
		if errors.Is(err, ledger.ErrOutcomeUnknown) {
			writeAppError(w, status, code, "the transaction's outcome is unknown: "+ce.Err.Error()+"; it may have been applied: check before retrying")
			return
		}
		writeAppError(w, status, code, "the transaction did not commit: "+ce.Err.Error()+"; retry")
	default:
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
	}
}

// writeHistoricalError answers a historical request whose transaction's
// state apphost.HistoricalFor could not give: 202 while it is not
// available yet, 400 for a malformed id, 404 for an unknown one.
func writeHistoricalError(w http.ResponseWriter, err error, txid string) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, apphost.ErrTxPending):
		status = http.StatusAccepted
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, apphost.ErrTxIDInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, apphost.ErrTxUnknown):
		status = http.StatusNotFound
	}
	writeAppError(w, status, "TransactionPendingOrUnknown", "the historical state for "+headerTxID+" "+txid+" is not available (yet)")
}

// writeRelayFailure answers a request the leader did not answer. sent says
// whether the request may have reached the leader: then whether it took
// effect is unknown.
func writeRelayFailure(w http.ResponseWriter, path string, sent bool) {
	p := &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", RetryAfter: 1,
		Detail: "the leader could not be reached, and the request was not delivered to it; retry shortly"}
	if sent {
		p.Detail = "the leader did not answer (it failed or leadership moved): the outcome is unknown; retry shortly"
		if path == "/entries" {
			p.Detail += ". A retry is safe: a registration that committed is answered as a duplicate, with the same entry id"
		}
	}
	writeRelayProblem(w, path, p)
}

// writeRelayProblem writes p in the error shape of the route path: CCF's
// JSON error on /app/… and on the classic governance routes
// (gov_classic.go), concise problem details (CBOR) elsewhere.
func writeRelayProblem(w http.ResponseWriter, path string, p *registry.Problem) {
	if !strings.HasPrefix(path, "/app/") && !classicPath(path) {
		registry.WriteProblem(w, p)
		return
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	writeAppError(w, p.Status, p.Title, p.Detail)
}

// errForwardedTwice answers a request another node forwarded here believing
// this node leads, when it no longer does: forwarding it again could loop.
var errForwardedTwice = &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
	Detail: "leadership moved while the request was forwarded; retry", RetryAfter: 1}
