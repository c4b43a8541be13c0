package registry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
)

// ContentTypeProblem is RFC 9290's concise problem details in CBOR.
const ContentTypeProblem = "application/concise-problem-details+cbor"

// Problem is an error response: RFC 9290 concise problem details,
// {-1: title, -2: detail}.
type Problem struct {
	Status int    `cbor:"-"`
	Title  string `cbor:"-1,keyasint"`
	Detail string `cbor:"-2,keyasint,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header when > 0.
	RetryAfter int `cbor:"-"`
	// Code, if set, is the name routes that answer CCF's JSON error shape
	// ({"error": {"code", "message"}}) give instead of Title: CCF's own
	// code where CCF names the same error differently (ResourceNotFound
	// for NotFound). It is a rendering of the same answer, not another.
	Code string `cbor:"-"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// A ProblemRule answers the errors that are (errors.Is) Err.
type ProblemRule struct {
	Err    error
	Status int
	Title  string // a bare name clients match on (spec/errors.md)
	// RetryAfter, in seconds, is sent as the Retry-After header when > 0.
	RetryAfter int
	// Hint, if set, is appended to the error's text in the detail.
	Hint string
	// Code, if set, is the Problem's Code: CCF's name for the error, on
	// routes that answer CCF's JSON error shape.
	Code string
}

// ProblemTable maps errors to their responses: the first rule whose Err
// an error is answers it, with the error's text as the detail.
//
// There is one table. Its rules for the SCITT pipeline's errors are the
// registry's (Problems), since registry serves the SCRAPI routes by itself
// to any program that mounts its Handler; the HTTP edge that serves more
// (governance, apps, joining nodes) extends it with its own rules, so
// that one lookup answers every route.
type ProblemTable []ProblemRule

// problems maps each error the pipeline can return to its response. It is
// the one place where the pipeline's errors become HTTP: a later SCRAPI
// draft that changes a status changes this table only.
var problems = ProblemTable{
	{cose.ErrTooLarge, http.StatusRequestEntityTooLarge, "PayloadTooLarge", 0, "", ""},
	{cose.ErrUntagged, http.StatusBadRequest, "UntaggedCOSESign1", 0, "", ""},
	{cose.ErrNotCOSE, http.StatusBadRequest, "NotCOSESign1", 0, "", ""},
	{cose.ErrBadHeader, http.StatusBadRequest, "InvalidProtectedHeader", 0, "", ""},
	{cose.ErrMissingCWTClaims, http.StatusBadRequest, "MissingCWTClaims", 0, "", ""},
	{cose.ErrAlgorithmNotAllowed, http.StatusBadRequest, "AlgorithmNotAllowed", 0, "", ""},
	{cose.ErrMissingKey, http.StatusBadRequest, "MissingIssuerKey", 0, "", ""},
	{cose.ErrBadChain, http.StatusBadRequest, "InvalidCertificateChain", 0, "", ""},
	{cose.ErrIssuerMismatch, http.StatusBadRequest, "IssuerMismatch", 0, "", ""},
	{cose.ErrUnknownIssuerKey, http.StatusBadRequest, "UnknownIssuerKey", 0, "", ""},
	{cose.ErrBadSignature, http.StatusBadRequest, "InvalidSignature", 0, "", ""},
	{cose.ErrDetachedPayload, http.StatusBadRequest, "DetachedPayload", 0, "", ""},
	{ErrBatchTooMany, http.StatusRequestEntityTooLarge, "BatchTooLarge", 0, "", ""},
	{ErrBatchMalformed, http.StatusBadRequest, "InvalidBatch", 0, "", ""},
	{ledger.ErrOverloaded, http.StatusServiceUnavailable, "ServiceUnavailable", 1, "", ""},
	{ledger.ErrNotLeader, http.StatusServiceUnavailable, "ServiceUnavailable", 1, "", ""},
	{ledger.ErrDropped, http.StatusServiceUnavailable, "ServiceUnavailable", 1, "", ""},
	{ledger.ErrOutcomeUnknown, http.StatusServiceUnavailable, "ServiceUnavailable", 1,
		"a retry is safe: a registration that committed is answered as a duplicate, with the same entry id", ""},
	{ledger.ErrStopped, http.StatusServiceUnavailable, "ServiceUnavailable", 1, "", ""},
	{store.ErrHistoryIncomplete, http.StatusServiceUnavailable, "HistoryIncomplete", 5,
		"retry later, or ask another node", ""},
	{ledger.ErrNotFound, http.StatusNotFound, "NotFound", 0, "", "ResourceNotFound"},
	{context.Canceled, 499, "ClientClosedRequest", 0, "", ""},
}

// Problems is the registry's table, for an edge to extend.
func Problems() ProblemTable { return slices.Clone(problems) }

// Extend is a new table that answers by rules first, then by t.
func (t ProblemTable) Extend(rules ...ProblemRule) ProblemTable {
	return append(slices.Clone(rules), t...)
}

// Match is err's answer by t's rules, or nil if none names it.
func (t ProblemTable) Match(err error) *Problem {
	for _, m := range t {
		if errors.Is(err, m.Err) {
			detail := err.Error()
			if m.Hint != "" {
				detail += "; " + m.Hint
			}
			return &Problem{Status: m.Status, Title: m.Title, Detail: detail, RetryAfter: m.RetryAfter, Code: m.Code}
		}
	}
	return nil
}

// For is err's answer: a *Problem answers itself, else t's rules do;
// unknown errors are 500s whose detail does not leak internals.
func (t ProblemTable) For(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if p := t.Match(err); p != nil {
		return p
	}
	return &Problem{Status: http.StatusInternalServerError, Title: "InternalError", Detail: "internal error; see the node's log"}
}

// ProblemFor maps err to its problem by the registry's table.
func ProblemFor(err error) *Problem { return problems.For(err) }

// WriteProblem writes p as the response.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	body, err := cbor.Marshal(p)
	if err != nil {
		http.Error(w, p.Title, p.Status)
		return
	}
	w.Header().Set("Content-Type", ContentTypeProblem)
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

func badRequest(title, detail string) *Problem {
	return &Problem{Status: http.StatusBadRequest, Title: title, Detail: detail}
}

// DecodeProblem reads an error answer as a Problem, for tests and tools
// that hold one: client.ParseProblem's reading of the body (concise
// problem details, or CCF's JSON error shape, whose code becomes the
// Title and message the Detail), and otherwise the status's text with the
// body as the detail.
func DecodeProblem(status int, body []byte) *Problem {
	p := &Problem{Status: status}
	var ok bool
	if p.Title, p.Detail, ok = client.ParseProblem(body); !ok {
		p.Title, p.Detail = http.StatusText(status), string(body)
	}
	return p
}
