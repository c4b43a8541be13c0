package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// govAPI serves governance (CCF's member endpoints) over svc.
type govAPI struct {
	svc *gov.Service
	log *slog.Logger
}

// GovRoutes adds the governance API (CCF's member endpoints, and the
// classic ones) over svc to r. Every write is a COSE_Sign1 request signed
// by a member (application/cose). A nil log discards.
func GovRoutes(r chi.Router, svc *gov.Service, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	govAPI{svc: svc, log: log}.routes(r)
}

func (g govAPI) routes(r chi.Router) {
	r.Post("/gov/members/proposals:create", g.post(func(ctx context.Context, _ *http.Request, body []byte) (any, error) {
		res, err := g.svc.Propose(ctx, body)
		if err != nil {
			return nil, err
		}
		return proposalView(res.ProposalID, res.Info, res), nil
	}))
	r.Get("/gov/members/proposals/{id}", g.getProposal)
	r.Get("/gov/members/proposals/{id}/actions", g.getActions)
	// "{id}:withdraw" and "{member}:submit" carry a verb after a colon, as
	// CCF's paths do; chi matches the whole segment.
	r.Post("/gov/members/proposals/{action}", g.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		id, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":withdraw")
		if !ok {
			return nil, errNoRoute
		}
		res, err := g.svc.Withdraw(ctx, id, body)
		if err != nil {
			return nil, err
		}
		return proposalView(id, res.Info, res), nil
	}))
	r.Post("/gov/members/proposals/{id}/ballots/{action}", g.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		member, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":submit")
		if !ok {
			return nil, errNoRoute
		}
		id := chi.URLParam(r, "id")
		res, err := g.svc.Vote(ctx, id, member, body)
		if err != nil {
			return nil, err
		}
		return proposalView(id, res.Info, res), nil
	}))
	r.Post("/gov/members/state-digests/{action}", g.post(func(ctx context.Context, r *http.Request, body []byte) (any, error) {
		a := chi.URLParam(r, "action")
		if member, ok := strings.CutSuffix(a, ":update"); ok {
			res, err := g.svc.UpdateStateDigest(ctx, member, body)
			if err != nil {
				return nil, err
			}
			return map[string]any{"memberId": member, "stateDigest": res.StateDigest, "transactionId": res.TxID.String()}, nil
		}
		if member, ok := strings.CutSuffix(a, ":ack"); ok {
			res, err := g.svc.Ack(ctx, member, body)
			if err != nil {
				return nil, err
			}
			return map[string]any{"memberId": member, "status": gov.MemberActive, "transactionId": res.TxID.String()}, nil
		}
		return nil, errNoRoute
	}))
	r.Post("/gov/recovery/members/{action}", g.post(g.submitRecoveryShare))
	r.Get("/gov/service/info", g.getServiceInfo)
	r.Get("/gov/service/members", g.getMembers)
	r.Get("/gov/service/constitution", g.getConstitution)
	g.classicRoutes(r)
}

var errNoRoute = errors.New("no such governance endpoint")

// maxBody bounds a governance request (proposals can carry JS).
const maxBody = gov.MaxRequestBytes

func (g govAPI) post(fn func(ctx context.Context, r *http.Request, body []byte) (any, error)) http.HandlerFunc {
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
			registry.WriteProblem(w, g.problem(r, err))
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
func (g govAPI) problem(r *http.Request, err error) *registry.Problem {
	p := problemFor(err)
	if p.Status >= 500 {
		g.log.Warn("governance request failed", "path", r.URL.Path, "err", err)
	}
	return p
}

func proposalView(id string, info *gov.ProposalInfo, res *gov.Result) map[string]any {
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

func (g govAPI) getProposal(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	info, err := g.svc.ProposalInfo(id)
	if errors.Is(err, gov.ErrProposalNotFound) {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "ProposalNotFound", Detail: "no proposal " + id})
		return
	}
	if err != nil {
		registry.WriteProblem(w, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, proposalView(id, info, nil))
}

func (g govAPI) getActions(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	raw, err := g.svc.ProposalActions(id)
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "ProposalNotFound", Detail: "no proposal " + id})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

func (g govAPI) getServiceInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": g.svc.ServiceStatus()})
}

func (g govAPI) getMembers(w http.ResponseWriter, r *http.Request) {
	type member struct {
		MemberID    string          `json:"memberId"`
		Status      string          `json:"status"`
		Certificate string          `json:"certificate"`
		MemberData  json.RawMessage `json:"memberData,omitempty"`
		EncKey      string          `json:"publicEncryptionKey,omitempty"`
	}
	out := []member{}
	err := g.svc.EachMember(func(id string, info gov.MemberInfo, cert, encKey string) {
		out = append(out, member{MemberID: id, Status: info.Status, MemberData: info.MemberData, Certificate: cert, EncKey: encKey})
	})
	if err != nil {
		registry.WriteProblem(w, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (g govAPI) getConstitution(w http.ResponseWriter, r *http.Request) {
	raw, err := g.svc.Constitution()
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no constitution yet"})
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(raw)
}
