package gov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// problems maps governance errors to responses, in one place.
var problems = []struct {
	err    error
	status int
	title  string
}{
	{ErrMalformed, http.StatusBadRequest, "InvalidGovernanceRequest"},
	{ErrWrongType, http.StatusBadRequest, "WrongMessageType"},
	{ErrMismatch, http.StatusBadRequest, "RequestDoesNotMatchURL"},
	{ErrStale, http.StatusBadRequest, "StaleRequest"},
	{ErrBadBallot, http.StatusBadRequest, "InvalidBallot"},
	{ErrInvalidProposal, http.StatusBadRequest, "ProposalInvalid"},
	{ErrWrongDigest, http.StatusBadRequest, "WrongStateDigest"},
	{ErrBadSignature, http.StatusUnauthorized, "InvalidSignature"},
	{ErrUnknownMember, http.StatusUnauthorized, "UnknownMember"},
	{ErrNotActive, http.StatusForbidden, "MemberNotActive"},
	{ErrNotProposer, http.StatusForbidden, "NotProposer"},
	{ErrProposalNotFound, http.StatusNotFound, "ProposalNotFound"},
	{ErrProposalClosed, http.StatusConflict, "ProposalNotOpen"},
	{ErrReplay, http.StatusConflict, "ReplayedRequest"},
	{ErrConstitution, http.StatusInternalServerError, "ConstitutionError"},
}

func problemFor(err error) *registry.Problem {
	for _, p := range problems {
		if errors.Is(err, p.err) {
			return &registry.Problem{Status: p.status, Title: p.title, Detail: err.Error()}
		}
	}
	return registry.ProblemFor(err)
}

// Routes adds the governance API (CCF's member endpoints) to r. Every
// write is a COSE_Sign1 request signed by a member (application/cose).
func (s *Service) Routes(r chi.Router) {
	r.Post("/gov/members/proposals:create", s.post(func(ctx context.Context, _ *http.Request, body []byte) (any, error) {
		res, err := s.Propose(ctx, body)
		if err != nil {
			return nil, err
		}
		return proposalView(res.ProposalID, res.Info, res), nil
	}))
	r.Get("/gov/members/proposals/{id}", s.getProposal)
	r.Get("/gov/members/proposals/{id}/actions", s.getActions)
	// "{id}:withdraw" and "{member}:submit" carry a verb after a colon, as
	// CCF's paths do; chi matches the whole segment.
	r.Post("/gov/members/proposals/{action}", s.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		id, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":withdraw")
		if !ok {
			return nil, errNoRoute
		}
		res, err := s.Withdraw(ctx, id, body)
		if err != nil {
			return nil, err
		}
		return proposalView(id, res.Info, res), nil
	}))
	r.Post("/gov/members/proposals/{id}/ballots/{action}", s.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		member, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":submit")
		if !ok {
			return nil, errNoRoute
		}
		id := chi.URLParam(r, "id")
		res, err := s.Vote(ctx, id, member, body)
		if err != nil {
			return nil, err
		}
		return proposalView(id, res.Info, res), nil
	}))
	r.Post("/gov/members/state-digests/{action}", s.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		a := chi.URLParam(r, "action")
		if member, ok := strings.CutSuffix(a, ":update"); ok {
			res, err := s.UpdateStateDigest(ctx, member, body)
			if err != nil {
				return nil, err
			}
			return map[string]any{"memberId": member, "stateDigest": res.StateDigest, "transactionId": res.TxID.String()}, nil
		}
		if member, ok := strings.CutSuffix(a, ":ack"); ok {
			res, err := s.Ack(ctx, member, body)
			if err != nil {
				return nil, err
			}
			return map[string]any{"memberId": member, "status": MemberActive, "transactionId": res.TxID.String()}, nil
		}
		return nil, errNoRoute
	}))
	r.Get("/gov/service/info", s.getServiceInfo)
	r.Get("/gov/service/members", s.getMembers)
	r.Get("/gov/service/constitution", s.getConstitution)
	s.classicRoutes(r)
}

var errNoRoute = errors.New("no such governance endpoint")

// maxBody bounds a governance request (proposals can carry JS).
const maxBody = MaxRequestBytes

func (s *Service) post(fn func(ctx context.Context, r *http.Request, body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := readRequest(w, r)
		if p != nil {
			registry.WriteProblem(w, p)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		out, err := fn(ctx, r, body)
		if errors.Is(err, errNoRoute) {
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no endpoint POST " + r.URL.Path})
			return
		}
		if err != nil {
			registry.WriteProblem(w, s.problem(r, err))
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// opTimeout bounds one governance operation.
const opTimeout = 30 * time.Second

// readRequest reads a governance request's body: a COSE_Sign1 of at most
// maxBody bytes.
func readRequest(w http.ResponseWriter, r *http.Request) ([]byte, *registry.Problem) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/cose" {
		return nil, &registry.Problem{Status: http.StatusUnsupportedMediaType, Title: "UnsupportedMediaType",
			Detail: "governance requests are COSE_Sign1 signed by a member: Content-Type application/cose"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, &registry.Problem{Status: http.StatusRequestEntityTooLarge, Title: "PayloadTooLarge",
			Detail: fmt.Sprintf("governance requests are at most %d bytes", maxBody)}
	}
	return body, nil
}

// problem maps err, logging server-side failures.
func (s *Service) problem(r *http.Request, err error) *registry.Problem {
	p := problemFor(err)
	if p.Status >= 500 {
		s.log.Warn("governance request failed", "path", r.URL.Path, "err", err)
	}
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func proposalView(id string, info *ProposalInfo, res *Result) map[string]any {
	v := map[string]any{
		"proposalId": id, "proposerId": info.ProposerID, "proposalState": info.State,
		"ballotCount": len(info.Ballots),
	}
	if info.FinalVotes != nil {
		v["finalVotes"] = info.FinalVotes
	}
	if info.VoteFailures != nil {
		v["voteFailures"] = info.VoteFailures
	}
	if info.Failure != nil {
		v["failure"] = info.Failure
	}
	if res != nil {
		v["transactionId"] = res.TxID.String()
	}
	return v
}

func (s *Service) getProposal(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	raw, err := s.ledger.GetKV(MapProposalsInfo, []byte(id))
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "ProposalNotFound", Detail: "no proposal " + id})
		return
	}
	var info ProposalInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, proposalView(id, &info, nil))
}

func (s *Service) getActions(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	raw, err := s.ledger.GetKV(MapProposals, []byte(id))
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "ProposalNotFound", Detail: "no proposal " + id})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

func (s *Service) getServiceInfo(w http.ResponseWriter, r *http.Request) {
	info := ServiceInfo{Status: ServiceOpening}
	if raw, err := s.ledger.GetKV(MapServiceInfo, []byte(KeyService)); err == nil {
		_ = json.Unmarshal(raw, &info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": info.Status})
}

func (s *Service) getMembers(w http.ResponseWriter, r *http.Request) {
	type member struct {
		MemberID    string          `json:"memberId"`
		Status      string          `json:"status"`
		Certificate string          `json:"certificate"`
		MemberData  json.RawMessage `json:"memberData,omitempty"`
		EncKey      string          `json:"publicEncryptionKey,omitempty"`
	}
	out := []member{}
	err := s.eachMember(func(id string, info MemberInfo, cert, encKey string) {
		out = append(out, member{MemberID: id, Status: info.Status, MemberData: info.MemberData, Certificate: cert, EncKey: encKey})
	})
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (s *Service) getConstitution(w http.ResponseWriter, r *http.Request) {
	raw, err := s.ledger.GetKV(MapConstitution, []byte(KeyConstitution))
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no constitution yet"})
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(raw)
}
