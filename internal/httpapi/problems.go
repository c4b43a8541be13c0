package httpapi

// The edge's answers to the errors of the packages below it: apphost's
// (in CCF's JSON error shape, as /app is CCF's), governance's, join's
// refusals and the peers' (as concise problem details, registry.ProblemFor
// for the rest; CCF's JSON on the classic governance routes), and a
// forwarded request's failure (in the shape of its route).

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
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
)

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

// joinProblems answers the join protocol's refusals; its other errors
// (the ledger's, consensus's) are answered as the registry's.
var joinProblems = []struct {
	kind   error
	status int
	title  string
	retry  int
}{
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
}

// joinProblem is err's problem: a refusal's by its kind, another error's
// by the registry's table.
func joinProblem(err error) *registry.Problem {
	var je *join.Error
	if errors.As(err, &je) {
		for _, m := range joinProblems {
			if errors.Is(je.Kind, m.kind) {
				return &registry.Problem{Status: m.status, Title: m.title, Detail: je.Detail, RetryAfter: m.retry}
			}
		}
	}
	return registry.ProblemFor(err)
}

// writePeerError answers a peer's raft request that replication refused
// or could not take.
func (s *Server) writePeerError(w http.ResponseWriter, p Peer, err error) {
	switch {
	case errors.Is(err, replication.ErrForbidden):
		s.cfg.Log.Warn("refused a peer's request", "peer", p.ID, "err", err)
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: err.Error()})
	case errors.Is(err, replication.ErrBadMessage):
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidRaftMessage", Detail: err.Error()})
	default:
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1})
	}
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
// JSON error on /app/… and on the classic governance routes (gov's
// http_classic.go), concise problem details (CBOR) elsewhere.
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

// govProblems answers governance errors (gov.Service's operations).
var govProblems = []struct {
	err    error
	status int
	title  string
}{
	{gov.ErrMalformed, http.StatusBadRequest, "InvalidGovernanceRequest"},
	{gov.ErrWrongType, http.StatusBadRequest, "WrongMessageType"},
	{gov.ErrMismatch, http.StatusBadRequest, "RequestDoesNotMatchURL"},
	{gov.ErrStale, http.StatusBadRequest, "StaleRequest"},
	{gov.ErrBadBallot, http.StatusBadRequest, "InvalidBallot"},
	{gov.ErrInvalidProposal, http.StatusBadRequest, "ProposalInvalid"},
	{gov.ErrWrongDigest, http.StatusBadRequest, "WrongStateDigest"},
	{gov.ErrBadSignature, http.StatusUnauthorized, "InvalidSignature"},
	{gov.ErrUnknownMember, http.StatusUnauthorized, "UnknownMember"},
	{gov.ErrNotActive, http.StatusForbidden, "MemberNotActive"},
	{gov.ErrNotProposer, http.StatusForbidden, "NotProposer"},
	{gov.ErrProposalNotFound, http.StatusNotFound, "ProposalNotFound"},
	{gov.ErrProposalClosed, http.StatusConflict, "ProposalNotOpen"},
	{gov.ErrReplay, http.StatusConflict, "ReplayedRequest"},
	{gov.ErrConstitution, http.StatusInternalServerError, "ConstitutionError"},
}

func govProblem(err error) *registry.Problem {
	for _, p := range govProblems {
		if errors.Is(err, p.err) {
			return &registry.Problem{Status: p.status, Title: p.title, Detail: err.Error()}
		}
	}
	return registry.ProblemFor(err)
}
