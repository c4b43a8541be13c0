package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// CCF's classic governance API (CCF ≤ 4, deprecated in 5, removed in 7),
// which the CCF app samples' scripts and the Managed CCF walkthrough
// still call. Each route runs the same operation as its counterpart in
// GovRoutes, with the same COSE_Sign1 requests; only the shapes differ, and
// they are CCF's (doc/schemas/gov_openapi.json of CCF 4.x):
//
//	POST /gov/proposals                   proposal      → 200 ProposalInfoSummary
//	POST /gov/proposals/{id}/ballots      ballot        → 200 ProposalInfoSummary
//	POST /gov/ack/update_state_digest     state_digest  → 200 {"state_digest"}
//	POST /gov/ack                         ack           → 204
//	GET  /gov/members                                   → 200 {member id: FullMemberDetails}
//
// The member is the request's kid (the classic paths do not name it).
// Writes answer with the header x-ms-ccf-transaction-id, as CCF does, and
// errors are CCF's {"error": {"code", "message"}} JSON, with the same
// codes and statuses as the rest of the governance API.
// classicPath reports whether path is a classic governance route (above),
// which answers errors in CCF's JSON shape.
func classicPath(path string) bool {
	switch path {
	case "/gov/proposals", "/gov/ack", "/gov/ack/update_state_digest", "/gov/members":
		return true
	}
	return strings.HasPrefix(path, "/gov/proposals/") && strings.HasSuffix(path, "/ballots")
}

func (g govAPI) classicRoutes(r chi.Router) {
	r.Post("/gov/proposals", g.classic(func(ctx context.Context, _ *http.Request, _ *govwire.Request, body []byte) (*gov.Result, any, error) {
		res, err := g.svc.Propose(ctx, body)
		if err != nil {
			return nil, nil, err
		}
		return res, proposalSummary(res.ProposalID, res.Info), nil
	}))
	r.Post("/gov/proposals/{id}/ballots", g.classic(func(ctx context.Context, r *http.Request, req *govwire.Request, body []byte) (*gov.Result, any, error) {
		id := chi.URLParam(r, "id")
		res, err := g.svc.Vote(ctx, id, req.MemberID, body)
		if err != nil {
			return nil, nil, err
		}
		return res, proposalSummary(id, res.Info), nil
	}))
	r.Post("/gov/ack/update_state_digest", g.classic(func(ctx context.Context, _ *http.Request, req *govwire.Request, body []byte) (*gov.Result, any, error) {
		res, err := g.svc.UpdateStateDigest(ctx, req.MemberID, body)
		if err != nil {
			return nil, nil, err
		}
		return res, map[string]string{"state_digest": res.StateDigest}, nil
	}))
	r.Post("/gov/ack", g.classic(func(ctx context.Context, _ *http.Request, req *govwire.Request, body []byte) (*gov.Result, any, error) {
		res, err := g.svc.Ack(ctx, req.MemberID, body)
		return res, nil, err
	}))
	r.Get("/gov/members", g.getMembersClassic)
}

// classic wraps an operation for a classic route. fn gets the parsed
// request (for its kid) as well as the bytes, which it passes on to the
// operation as they came. A nil answer is 204 No Content.
func (g govAPI) classic(fn func(ctx context.Context, r *http.Request, req *govwire.Request, body []byte) (*gov.Result, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := readRequest(w, r)
		if p != nil {
			writeCCFError(w, p)
			return
		}
		req, err := govwire.ParseRequest(body)
		if err != nil {
			writeCCFError(w, g.problem(r, err))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		res, out, err := fn(ctx, r, req, body)
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

func writeCCFError(w http.ResponseWriter, p *registry.Problem) {
	var e CCFError
	e.Error.Code, e.Error.Message = p.Title, p.Detail
	writeJSON(w, p.Status, e)
}

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
