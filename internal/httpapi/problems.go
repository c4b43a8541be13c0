package httpapi

// The edge's answers to the errors of the packages below it: one table
// (problems: the registry's, extended with the rules for governance's,
// the join protocol's and replication's sentinels), rendered per route
// family (writeError): CCF's JSON error shape {"error": {"code",
// "message"}} on CCF's families (/gov, /node, /app), concise problem
// details (RFC 9290) on the SCITT routes; apphost's and appauth's errors in
// CCF's shape, as /app is CCF's; and a forwarded request's failure, in the
// shape of its route.

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
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/registry"
)

// edgeRules are the edge's rules, for the errors of the packages below it
// besides the registry: governance's, the join protocol's refusals, and
// replication's refusals of a peer's message. The detail is the error's
// text. They answer on CCF's route families only (/gov, /node), in CCF's
// JSON shape, so their titles are CCF's codes (include/ccf/odata_error.h)
// where CCF has the same error, and Charter's names where it has none
// (spec/errors.md).
var edgeRules = []registry.ProblemRule{
	// gov.Service's operations.
	{Err: govwire.ErrMalformed, Status: http.StatusBadRequest, Title: "InvalidGovernanceRequest"},
	{Err: govwire.ErrWrongType, Status: http.StatusBadRequest, Title: "WrongMessageType"},
	{Err: gov.ErrMismatch, Status: http.StatusBadRequest, Title: "RequestDoesNotMatchURL"},
	{Err: govwire.ErrStale, Status: http.StatusBadRequest, Title: "StaleRequest"},
	{Err: gov.ErrBadBallot, Status: http.StatusBadRequest, Title: "InvalidBallot"},
	{Err: gov.ErrInvalidProposal, Status: http.StatusBadRequest, Title: "ProposalFailedToValidate"},
	{Err: gov.ErrWrongDigest, Status: http.StatusBadRequest, Title: "StateDigestMismatch"},
	{Err: govwire.ErrBadSignature, Status: http.StatusUnauthorized, Title: "InvalidSignature"},
	{Err: govwire.ErrHTTPSigMalformed, Status: http.StatusBadRequest, Title: "InvalidHTTPSignature"},
	{Err: govwire.ErrHTTPSigMissingHeader, Status: http.StatusBadRequest, Title: "MissingSignedHeader"},
	{Err: govwire.ErrDigestMismatch, Status: http.StatusBadRequest, Title: "DigestMismatch"},
	{Err: govwire.ErrUnknownKeyID, Status: http.StatusUnauthorized, Title: "UnknownKeyId"},
	{Err: govwire.ErrUnknownMember, Status: http.StatusUnauthorized, Title: "UnknownMember"},
	{Err: gov.ErrNotActive, Status: http.StatusForbidden, Title: "MemberNotActive"},
	{Err: gov.ErrNotProposer, Status: http.StatusForbidden, Title: "NotProposer"},
	{Err: gov.ErrProposalNotFound, Status: http.StatusNotFound, Title: "ProposalNotFound"},
	{Err: gov.ErrProposalClosed, Status: http.StatusConflict, Title: "ProposalNotOpen"},
	{Err: govwire.ErrReplay, Status: http.StatusConflict, Title: "ProposalReplay"},
	// Recovery shares (spec/errors.md).
	{Err: gov.ErrSharesNotExpected, Status: http.StatusConflict, Title: "ServiceNotWaitingForRecoveryShares"},
	{Err: gov.ErrNotRecoveryMember, Status: http.StatusForbidden, Title: "NotRecoveryMember"},
	{Err: gov.ErrWrongShare, Status: http.StatusBadRequest, Title: "InvalidRecoveryShare"},
	{Err: gov.ErrShareReplayed, Status: http.StatusConflict, Title: "RecoveryShareAlreadySubmitted"},
	{Err: gov.ErrNoSharing, Status: http.StatusConflict, Title: "NoRecoverySharing"},
	{Err: gov.ErrConstitution, Status: http.StatusInternalServerError, Title: "ConstitutionError"},
	{Err: govwire.ErrNotFound, Status: http.StatusNotFound, Title: "ResourceNotFound"},
	// join.Leader's refusals (*join.Error, whose text is its detail).
	{Err: join.ErrInvalidRequest, Status: http.StatusBadRequest, Title: "InvalidInput"},
	{Err: join.ErrTooLarge, Status: http.StatusRequestEntityTooLarge, Title: "RequestBodyTooLarge"},
	{Err: join.ErrInvalidSignature, Status: http.StatusBadRequest, Title: "InvalidSignature"},
	{Err: join.ErrInvalidEvidence, Status: http.StatusBadRequest, Title: "InvalidEvidence"},
	{Err: join.ErrAttestation, Status: http.StatusForbidden, Title: "AttestationFailed"},
	{Err: join.ErrRetired, Status: http.StatusForbidden, Title: "NodeRetired"},
	{Err: join.ErrAddressTaken, Status: http.StatusConflict, Title: "Conflict"},
	{Err: join.ErrNotLeader, Status: http.StatusServiceUnavailable, Title: "NotLeader", RetryAfter: 1},
	{Err: join.ErrRateLimited, Status: http.StatusTooManyRequests, Title: "TooManyRequests", RetryAfter: 1},
	{Err: join.ErrTooManyPending, Status: http.StatusTooManyRequests, Title: "TooManyPendingNodes", RetryAfter: 5},
	{Err: join.ErrUnavailable, Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", RetryAfter: 1},
	// replication's refusals of a peer's raft message.
	{Err: replication.ErrForbidden, Status: http.StatusForbidden, Title: "Forbidden"},
	{Err: replication.ErrBadMessage, Status: http.StatusBadRequest, Title: "InvalidRaftMessage"},
	{Err: store.ErrBackfillRange, Status: http.StatusBadRequest, Title: "InvalidHistoryRange"},
}

// problems is the one table every route's errors are answered by: the
// edge's rules first, then the registry's (registry.Problems, the SCRAPI
// pipeline's, which registry's own handlers answer by). The edge's rules
// name the sentinels of packages that cannot import registry, so no error
// they match is also a *registry.Problem: the order is the lookup's only.
var problems = registry.Problems().Extend(edgeRules...)

// problemFor is err's answer by the table.
func problemFor(err error) *registry.Problem { return problems.For(err) }

// writePeerError answers a peer's raft request that replication refused
// or could not take (stopping, storage): the peer retries those.
func (s *Server) writePeerError(w http.ResponseWriter, p peer.Peer, err error) {
	if errors.Is(err, replication.ErrForbidden) {
		s.cfg.Log.Warn("refused a peer's request", "peer", p.ID, "err", err)
	}
	// Only the edge's own rules: whatever else stopped replication (its
	// storage, its stopping) is a 503 the peer retries.
	pr := registry.ProblemTable(edgeRules).Match(err)
	if pr == nil {
		pr = &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1}
	}
	writeCCF(w, pr)
}

// ccfFamily reports whether path belongs to a route family that answers
// errors in CCF's JSON shape: CCF's own prefixes, /gov, /node and /app.
// Every other route is SCITT's (or Charter's own beside it: /metrics,
// tiles) and answers concise problem details.
func ccfFamily(path string) bool {
	for _, prefix := range []string{"/gov", "/node", "/app"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// writeError answers p in the error shape of r's route family: the one
// table's answer, rendered as CCF's JSON error or as problem details.
func writeError(w http.ResponseWriter, r *http.Request, p *registry.Problem) {
	writeErrorAt(w, r.URL.Path, p)
}

// writeErrorAt is writeError for a route given by its path.
func writeErrorAt(w http.ResponseWriter, path string, p *registry.Problem) {
	if !ccfFamily(path) {
		registry.WriteProblem(w, p)
		return
	}
	writeCCF(w, p)
}

// writeCCF renders p as CCF's JSON error: the code is CCF's name for it
// (p.Code) where CCF's differs from the title, else the title.
func writeCCF(w http.ResponseWriter, p *registry.Problem) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	code := p.Code
	if code == "" {
		code = p.Title
	}
	writeAppError(w, p.Status, code, p.Detail)
}

// notFound is a 404 for what detail names.
func notFound(detail string) *registry.Problem {
	return &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Code: "ResourceNotFound", Detail: detail}
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
	case errors.Is(err, store.ErrHistoryIncomplete):
		// The transaction is below the floor of the state image this
		// node installed, and backfill has not reached it yet.
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
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
		if path == "/entries" || path == registry.BatchPath {
			p.Detail += ". A retry is safe: a registration that committed is answered as a duplicate, with the same entry id"
		}
	}
	writeRelayProblem(w, path, p)
}

// writeRelayProblem writes p in the error shape of the route path
// (writeErrorAt).
func writeRelayProblem(w http.ResponseWriter, path string, p *registry.Problem) {
	writeErrorAt(w, path, p)
}

// errForwardedTwice answers a request another node forwarded here believing
// this node leads, when it no longer does: forwarding it again could loop.
var errForwardedTwice = &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
	Detail: "leadership moved while the request was forwarded; retry", RetryAfter: 1}
