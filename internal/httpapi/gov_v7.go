package httpapi

// CCF 7's governance API: every call names its api-version (CCF's
// api_version.h: 2023-06-01-preview and 2024-07-01), and answers in the
// shapes of CCF's published schema for 2024-07-01
// (doc/schemas/gov/2024-07-01/gov.json: Proposals.Proposal, Acks.StateDigest,
// ServiceState.Member, ServiceState.ServiceInfo, ServiceState.JsApp,
// ServiceState.JoinPolicies, Paged* lists as {"value": [...]}). Writes are
// COSE_Sign1 requests, verified by internal/gov as on the classic routes
// (gov_classic.go); writes answer with x-ms-ccf-transaction-id, as CCF's.
// Charter answers both versions with 2024-07-01's shapes, which add to the
// preview's (ballotSubmitters).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// govAPIVersions are the api-version values served, oldest first (CCF 7
// accepts these two).
var govAPIVersions = []string{"2023-06-01-preview", "2024-07-01"}

// requireAPIVersion refuses a request without a served api-version, as
// CCF does, before its body is read: 400 MissingApiVersionParameter or
// UnsupportedApiVersionValue, naming the versions served.
func requireAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		supported := "The supported api-versions are: " + strings.Join(govAPIVersions, ", ")
		v, ok := r.URL.Query()["api-version"]
		switch {
		case !ok:
			writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "MissingApiVersionParameter",
				Detail: "The api-version query parameter (?api-version=) is required for all requests. " + supported})
		case len(v) != 1 || !slices.Contains(govAPIVersions, v[0]):
			writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "UnsupportedApiVersionValue",
				Detail: "Unsupported api-version " + strconv.Quote(strings.Join(v, ",")) + ". " + supported})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (g govAPI) v7Routes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(requireAPIVersion)
		r.Post("/gov/members/proposals:create", g.write(func(ctx context.Context, _ *http.Request, body []byte) (*gov.Result, any, error) {
			res, err := g.svc.Propose(ctx, body)
			if err != nil {
				return nil, nil, err
			}
			return res, proposalView(res.ProposalID, res.Info, res), nil
		}))
		r.Get("/gov/members/proposals", g.listProposals)
		r.Get("/gov/members/proposals/{id}", g.getProposal)
		r.Get("/gov/members/proposals/{id}/actions", g.getActions)
		// "{id}:withdraw" and "{member}:submit" carry a verb after a colon,
		// as CCF's paths do; chi matches the whole segment.
		r.Post("/gov/members/proposals/{action}", g.write(func(ctx context.Context, r *http.Request, body []byte) (*gov.Result, any, error) {
			id, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":withdraw")
			if !ok {
				return nil, nil, errNoRoute
			}
			res, err := g.svc.Withdraw(ctx, id, body)
			if err != nil {
				return nil, nil, err
			}
			return res, proposalView(id, res.Info, res), nil
		}))
		r.Get("/gov/members/proposals/{id}/ballots/{action}", g.getBallot)
		r.Post("/gov/members/proposals/{id}/ballots/{action}", g.write(func(ctx context.Context, r *http.Request, body []byte) (*gov.Result, any, error) {
			member, ok := strings.CutSuffix(chi.URLParam(r, "action"), ":submit")
			if !ok {
				return nil, nil, errNoRoute
			}
			id := chi.URLParam(r, "id")
			res, err := g.svc.Vote(ctx, id, member, body)
			if err != nil {
				return nil, nil, err
			}
			return res, proposalView(id, res.Info, res), nil
		}))
		r.Get("/gov/members/state-digests/{action}", g.getStateDigest)
		r.Post("/gov/members/state-digests/{action}", g.write(func(ctx context.Context, r *http.Request, body []byte) (*gov.Result, any, error) {
			a := chi.URLParam(r, "action")
			if member, ok := strings.CutSuffix(a, ":update"); ok {
				res, err := g.svc.UpdateStateDigest(ctx, member, body)
				if err != nil {
					return nil, nil, err
				}
				return res, map[string]any{"memberId": member, "stateDigest": res.StateDigest, "transactionId": res.TxID.String()}, nil
			}
			if member, ok := strings.CutSuffix(a, ":ack"); ok {
				// CCF answers an ack 204 No Content.
				res, err := g.svc.Ack(ctx, member, body)
				return res, nil, err
			}
			return nil, nil, errNoRoute
		}))
		r.Get("/gov/service/info", g.getServiceInfo)
		r.Get("/gov/service/members", g.getMembers)
		r.Get("/gov/service/members/{id}", g.getMember)
		r.Get("/gov/service/constitution", g.getConstitution)
		r.Get("/gov/service/javascript-app", g.getJSApp)
		r.Get("/gov/service/join-policy", g.getJoinPolicy)
	})
	// Recovery is served with or without api-version, as the encrypted
	// shares are (recovery.go): a member recovering a service may hold a
	// tool older than CCF 7's.
	r.Post("/gov/recovery/members/{action}", g.write(func(ctx context.Context, r *http.Request, body []byte) (*gov.Result, any, error) {
		out, err := g.submitRecoveryShare(ctx, r, body)
		return nil, out, err
	}))
}

// write wraps a governance write: it reads the request (bounded), runs fn
// with the bytes as they came, and answers fn's value (200 JSON; nil is
// 204) with the transaction's id in x-ms-ccf-transaction-id.
func (g govAPI) write(fn func(ctx context.Context, r *http.Request, body []byte) (*gov.Result, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := readRequest(w, r)
		if p != nil {
			writeError(w, r, p)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		res, out, err := fn(ctx, r, body)
		if errors.Is(err, errNoRoute) {
			writeError(w, r, notFound("no endpoint POST "+r.URL.Path))
			return
		}
		if err != nil {
			writeError(w, r, g.problem(r, err))
			return
		}
		if res != nil {
			w.Header().Set(headerTxID, res.TxID.String())
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// failureInfo is CCF's Proposals.FailureInfo.
type failureInfo struct {
	Reason string `json:"reason"`
}

// proposalView is CCF's Proposals.Proposal (proposalId, proposerId,
// proposalState, ballotCount, ballotSubmitters, finalVotes, voteFailures,
// failure), with Charter's transactionId for a write's answer.
func proposalView(id string, info *govwire.ProposalInfo, res *gov.Result) map[string]any {
	submitters := make([]string, 0, len(info.Ballots))
	for m := range info.Ballots {
		submitters = append(submitters, m)
	}
	slices.Sort(submitters)
	v := map[string]any{
		"proposalId": id, "proposerId": info.ProposerID, "proposalState": info.State,
		"ballotCount": len(info.Ballots), "ballotSubmitters": submitters,
	}
	if info.FinalVotes != nil {
		v["finalVotes"] = info.FinalVotes
	}
	if len(info.VoteFailures) > 0 {
		failures := map[string]failureInfo{}
		for m, reason := range info.VoteFailures {
			failures[m] = failureInfo{Reason: reason}
		}
		v["voteFailures"] = failures
	}
	if info.Failure != nil {
		v["failure"] = failureInfo{Reason: info.Failure.Reason}
	}
	if res != nil {
		v["transactionId"] = res.TxID.String()
	}
	return v
}

// listProposals is CCF's Proposals_List: the open proposals only ("non-open
// proposals ... are not returned").
func (g govAPI) listProposals(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	err := g.svc.EachProposal(func(id string, info govwire.ProposalInfo) {
		if info.State == govwire.StateOpen {
			out = append(out, proposalView(id, &info, nil))
		}
	})
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (g govAPI) getProposal(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	info, err := g.svc.ProposalInfo(id)
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, proposalView(id, info, nil))
}

// getActions is CCF's Proposals_GetActions: the proposal as submitted.
func (g govAPI) getActions(w http.ResponseWriter, r *http.Request) {
	raw, err := g.svc.ProposalActions(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

// getBallot is CCF's Ballots_Get: the ballot's script, as text/javascript.
func (g govAPI) getBallot(w http.ResponseWriter, r *http.Request) {
	id, member := chi.URLParam(r, "id"), chi.URLParam(r, "action")
	info, err := g.svc.ProposalInfo(id)
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	ballot, ok := info.Ballots[member]
	if !ok {
		writeError(w, r, notFound("member "+member+" has no ballot on proposal "+id))
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write([]byte(ballot))
}

// getStateDigest is CCF's StateDigests_Get: the digest last issued to the
// member by :update.
func (g govAPI) getStateDigest(w http.ResponseWriter, r *http.Request) {
	member := chi.URLParam(r, "action")
	digest, err := g.svc.StateDigest(member)
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"memberId": member, "stateDigest": digest})
}

// getServiceInfo is CCF's ServiceState_GetServiceInfo. CCF's configuration object is not
// given: its two settings (node certificate validity, a count-bounded
// replay window) are not Charter's (Charter's replay window is bounded by
// time, governance.md).
func (g govAPI) getServiceInfo(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"status": g.svc.ServiceStatus(), "recoveryCount": 0}
	if s := g.node; s != nil {
		out["certificate"] = string(s.cfg.ServiceCertPEM)
		recoveries, created, err := s.serviceCreation()
		if err != nil {
			writeError(w, r, g.problem(r, err))
			return
		}
		out["recoveryCount"] = recoveries
		if created != "" {
			out["creationTransactionId"] = created
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// memberView is CCF's ServiceState.Member.
type memberView struct {
	MemberID    string          `json:"memberId"`
	Status      string          `json:"status"`
	Certificate string          `json:"certificate"`
	MemberData  json.RawMessage `json:"memberData,omitempty"`
	EncKey      string          `json:"publicEncryptionKey,omitempty"`
}

func (g govAPI) getMembers(w http.ResponseWriter, r *http.Request) {
	out := []memberView{}
	err := g.svc.EachMember(func(id string, info govwire.MemberInfo, cert, encKey string) {
		out = append(out, memberView{MemberID: id, Status: info.Status, MemberData: info.MemberData, Certificate: cert, EncKey: encKey})
	})
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (g govAPI) getMember(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	info, cert, encKey, err := g.svc.Member(id)
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, memberView{MemberID: id, Status: info.Status, MemberData: info.MemberData, Certificate: cert, EncKey: encKey})
}

// getConstitution is the constitution's source, as text/javascript (as
// CCF answers it).
func (g govAPI) getConstitution(w http.ResponseWriter, r *http.Request) {
	raw, err := g.svc.Constitution()
	if err != nil {
		writeError(w, r, notFound("no constitution yet"))
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(raw)
}

// ccfForwarding and ccfMode are CCF's enum values (ServiceState.
// ForwardingRequired, ServiceState.JsExecMode) for app.json's.
var (
	ccfForwarding = map[string]string{"sometimes": "Sometimes", "always": "Always", "never": "Never"}
	ccfMode       = map[string]string{app.ModeReadWrite: "ReadWrite", app.ModeReadOnly: "ReadOnly", app.ModeHistorical: "Historical"}
)

// jsEndpointInfo is CCF's ServiceState.JsEndpointInfo.
type jsEndpointInfo struct {
	JSModule           string          `json:"jsModule"`
	JSFunction         string          `json:"jsFunction"`
	ForwardingRequired string          `json:"forwardingRequired"`
	AuthnPolicies      []string        `json:"authnPolicies"`
	Mode               string          `json:"mode"`
	OpenAPI            json.RawMessage `json:"openApi"`
}

// getJSApp is CCF's ServiceState_GetJsApp: the deployed app's endpoints,
// keyed by path and method (no app: none).
func (g govAPI) getJSApp(w http.ResponseWriter, r *http.Request) {
	endpoints := map[string]map[string]jsEndpointInfo{}
	raw, err := g.svc.AppBundle()
	switch {
	case errors.Is(err, govwire.ErrNotFound):
	case err != nil:
		writeError(w, r, g.problem(r, err))
		return
	default:
		b, err := app.ParseBundle(raw)
		if err != nil {
			writeError(w, r, g.problem(r, err))
			return
		}
		for path, methods := range b.Metadata.Endpoints {
			endpoints[path] = map[string]jsEndpointInfo{}
			for method, info := range methods {
				policies := make([]string, 0, len(info.AuthnPolicies))
				for _, p := range info.AuthnPolicies {
					policies = append(policies, p.String())
				}
				openAPI := info.OpenAPI
				if len(openAPI) == 0 || string(openAPI) == "null" {
					openAPI = json.RawMessage("{}")
				}
				endpoints[path][method] = jsEndpointInfo{JSModule: info.JSModule, JSFunction: info.JSFunction,
					ForwardingRequired: ccfForwarding[info.ForwardingRequired], AuthnPolicies: policies,
					Mode: ccfMode[info.Mode], OpenAPI: openAPI}
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": endpoints})
}

// getJoinPolicy is CCF's ServiceState_GetJoinPolicies, from the maps
// governance keeps: SNP measurements and host data, virtual measurements
// (hex). Charter governs no SGX measurements, UVM endorsements, TCB
// minimums or virtual host data, so those are empty.
func (g govAPI) getJoinPolicy(w http.ResponseWriter, r *http.Request) {
	p, err := g.svc.JoinPolicy()
	if err != nil {
		writeError(w, r, g.problem(r, err))
		return
	}
	hostData := map[string]string{}
	for _, h := range p.SNPHostData {
		hostData[h] = ""
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sgx": map[string]any{"measurements": []string{}},
		"snp": map[string]any{"measurements": p.SNPMeasurements, "hostData": hostData,
			"uvmEndorsements": map[string]any{}, "tcbVersions": map[string]any{}},
		"virtual": map[string]any{"measurements": p.VirtualMeasurements, "hostData": []string{}},
	})
}
