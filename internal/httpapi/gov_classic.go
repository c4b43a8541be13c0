package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// CCF's classic governance API (CCF ≤ 4, deprecated in 5, removed in 7),
// which the CCF app samples' scripts and the Managed CCF walkthrough
// still call. Each route runs the same operation as its counterpart in
// GovRoutes, with the same COSE_Sign1 requests or with HTTP signatures as
// CCF ≤ 3's scurl.sh makes them (httpsig.go); only the shapes differ, and
// they are CCF's (doc/schemas/gov_openapi.json of CCF 4.x):
//
//	POST /gov/proposals                   proposal      → 200 ProposalInfoSummary
//	POST /gov/proposals/{id}/ballots      ballot        → 200 ProposalInfoSummary
//	POST /gov/proposals/{id}/withdraw     withdrawal    → 200 ProposalInfoSummary
//	POST /gov/ack/update_state_digest     state_digest  → 200 {"state_digest"}
//	                                      (or a member's TLS client certificate alone)
//	POST /gov/ack                         ack           → 204
//	GET  /gov/members                                   → 200 {member id: FullMemberDetails}
//
// The member is the request's kid, or the member the HTTP signature's
// keyId names (the classic paths do not name it).
// Writes answer with the header x-ms-ccf-transaction-id, as CCF does, and
// errors are CCF's {"error": {"code", "message"}} JSON, with the same
// codes and statuses as the rest of the governance API.

func (g govAPI) classicRoutes(r chi.Router) {
	r.Post("/gov/proposals", g.classic(govwire.MsgProposal, func(ctx context.Context, _ *http.Request, req *govwire.Request) (*gov.Result, any, error) {
		res, err := g.svc.ProposeRequest(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		return res, proposalSummary(res.ProposalID, res.Info), nil
	}))
	r.Post("/gov/proposals/{id}/ballots", g.classic(govwire.MsgBallot, func(ctx context.Context, r *http.Request, req *govwire.Request) (*gov.Result, any, error) {
		id := chi.URLParam(r, "id")
		res, err := g.svc.VoteRequest(ctx, id, req.MemberID, req)
		if err != nil {
			return nil, nil, err
		}
		return res, proposalSummary(id, res.Info), nil
	}))
	r.Post("/gov/proposals/{id}/withdraw", g.classic(govwire.MsgWithdrawal, func(ctx context.Context, r *http.Request, req *govwire.Request) (*gov.Result, any, error) {
		id := chi.URLParam(r, "id")
		res, err := g.svc.WithdrawRequest(ctx, id, req)
		if err != nil {
			return nil, nil, err
		}
		return res, proposalSummary(id, res.Info), nil
	}))
	r.Post("/gov/ack/update_state_digest", g.classic(govwire.MsgStateDigest, func(ctx context.Context, r *http.Request, req *govwire.Request) (*gov.Result, any, error) {
		var res *gov.Result
		var err error
		if req == nil {
			// No signature: the member's TLS client certificate.
			res, err = g.svc.UpdateStateDigestForCert(ctx, g.clientCert(r))
		} else {
			res, err = g.svc.UpdateStateDigestRequest(ctx, req.MemberID, req)
		}
		if err != nil {
			return nil, nil, err
		}
		return res, map[string]string{"state_digest": res.StateDigest}, nil
	}))
	r.Post("/gov/ack", g.classic(govwire.MsgAck, func(ctx context.Context, _ *http.Request, req *govwire.Request) (*gov.Result, any, error) {
		res, err := g.svc.AckRequest(ctx, req.MemberID, req)
		return res, nil, err
	}))
	r.Get("/gov/members", g.getMembersClassic)
}

// classic wraps an operation for a classic route, which takes requests of
// type t. fn gets the parsed request, COSE or HTTP-signed (httpsig.go), or
// nil when the route takes a client certificate alone (only
// update_state_digest) and the caller sent no signature. A nil answer is
// 204 No Content.
func (g govAPI) classic(t govwire.MsgType, fn func(ctx context.Context, r *http.Request, req *govwire.Request) (*gov.Result, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth, p := classicAuthOf(r, t == govwire.MsgStateDigest)
		if p != nil {
			writeCCFError(w, p)
			return
		}
		body, p := readBody(w, r)
		if p != nil {
			writeCCFError(w, p)
			return
		}
		var req *govwire.Request
		var err error
		switch auth {
		case authCOSE:
			req, err = govwire.ParseRequest(body)
		case authHTTPSig:
			proposalID := ""
			if t == govwire.MsgBallot || t == govwire.MsgWithdrawal {
				proposalID = chi.URLParam(r, "id")
			}
			req, err = g.svc.ParseHTTPSigned(httpMessage(r, body), t, proposalID)
		case authClientCert:
			// curl -X POST with no body; anything else is not this form.
			if len(body) != 0 {
				err = fmt.Errorf("%w: a request authenticated by its client certificate alone has no body; sign it (COSE or HTTP signature) to send one", govwire.ErrMalformed)
			}
		}
		if err != nil {
			writeCCFError(w, g.problem(r, err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		res, out, err := fn(ctx, r, req)
		if err != nil {
			writeCCFError(w, g.problem(r, err))
			return
		}
		if res != nil {
			w.Header().Set("x-ms-ccf-transaction-id", res.TxID.String())
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// CCFError is CCF's error body.
type CCFError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeCCFError answers p in CCF's JSON error shape (writeCCF, the
// rendering every CCF route family shares: CCF's code, Retry-After).
func writeCCFError(w http.ResponseWriter, p *registry.Problem) { writeCCF(w, p) }

// ProposalSummary is CCF's ProposalInfoSummary, the classic answer to a
// proposal or a ballot.
type ProposalSummary struct {
	ProposalID   string                     `json:"proposal_id"`
	ProposerID   string                     `json:"proposer_id"`
	State        string                     `json:"state"`
	BallotCount  int                        `json:"ballot_count"`
	Votes        map[string]bool            `json:"votes,omitempty"`
	VoteFailures map[string]govwire.Failure `json:"vote_failures,omitempty"`
	Failure      *govwire.Failure           `json:"failure,omitempty"`
}

func proposalSummary(id string, info *govwire.ProposalInfo) ProposalSummary {
	out := ProposalSummary{ProposalID: id, ProposerID: info.ProposerID, State: info.State,
		BallotCount: len(info.Ballots), Votes: info.FinalVotes, Failure: info.Failure}
	if len(info.VoteFailures) > 0 {
		out.VoteFailures = map[string]govwire.Failure{}
		for m, reason := range info.VoteFailures {
			out.VoteFailures[m] = govwire.Failure{Reason: reason}
		}
	}
	return out
}

// FullMemberDetails is CCF's classic member record in GET /gov/members.
type FullMemberDetails struct {
	Status              string          `json:"status"`
	MemberData          json.RawMessage `json:"member_data"`
	Cert                string          `json:"cert"`
	PublicEncryptionKey string          `json:"public_encryption_key"`
}

func (g govAPI) getMembersClassic(w http.ResponseWriter, r *http.Request) {
	out := map[string]FullMemberDetails{}
	err := g.svc.EachMember(func(id string, info govwire.MemberInfo, cert, encKey string) {
		data := info.MemberData
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		out[id] = FullMemberDetails{Status: info.Status, MemberData: data, Cert: cert, PublicEncryptionKey: encKey}
	})
	if err != nil {
		writeCCFError(w, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
