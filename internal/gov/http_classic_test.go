package gov_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/httpapi"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// serve runs the governance routes of e on an httptest server.
func (e *env) serve() *httptest.Server {
	e.t.Helper()
	r := chi.NewRouter()
	httpapi.GovRoutes(r, e.s, nil)
	srv := httptest.NewServer(r)
	e.t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, contentType string, body []byte) reply {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d %q: %v", r.status, r.body, err)
	}
}

// The walkthrough of Managed CCF on the classic routes: activate, propose,
// vote, list members.
func TestClassicRoutes(t *testing.T) {
	e := newEnv(t, 2)
	srv := e.serve()
	a, b := e.m[0], e.m[1]

	// update_state_digest answers the digest to sign; ack activates, 204.
	for _, m := range e.m {
		upd := post(t, srv.URL+"/gov/ack/update_state_digest", "application/cose", m.sign(t, govwire.MsgStateDigest, "", []byte("{}")))
		var sd map[string]string
		upd.json(t, &sd)
		if upd.status != 200 || len(sd) != 1 || len(sd["state_digest"]) != 64 || upd.header.Get("x-ms-ccf-transaction-id") == "" {
			t.Fatalf("update_state_digest: %d %s %v", upd.status, upd.body, upd.header)
		}
		ack := post(t, srv.URL+"/gov/ack", "application/cose", m.sign(t, govwire.MsgAck, "", govwire.Ack{StateDigest: sd["state_digest"]}))
		if ack.status != http.StatusNoContent || len(ack.body) != 0 || ack.header.Get("x-ms-ccf-transaction-id") == "" {
			t.Fatalf("ack: %d %q", ack.status, ack.body)
		}
	}

	resp, err := http.Get(srv.URL + "/gov/members")
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]httpapi.FullMemberDetails
	if err := json.NewDecoder(resp.Body).Decode(&members); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(members) != 2 || members[a.id].Status != govwire.MemberActive || members[a.id].Cert != a.pem || string(members[a.id].MemberData) != "null" {
		t.Fatalf("members: %+v", members)
	}

	// A proposal, then ballots: ProposalInfoSummary each time.
	p := post(t, srv.URL+"/gov/proposals", "application/cose", a.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(2048)}}))
	var sum httpapi.ProposalSummary
	p.json(t, &sum)
	if p.status != 200 || len(sum.ProposalID) != 64 || sum.ProposerID != a.id || sum.State != govwire.StateOpen || sum.BallotCount != 0 || p.header.Get("x-ms-ccf-transaction-id") == "" {
		t.Fatalf("proposal: %d %s", p.status, p.body)
	}
	var raw map[string]any
	p.json(t, &raw)
	for _, k := range []string{"proposal_id", "proposer_id", "state", "ballot_count"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("proposal answer lacks %s: %s", k, p.body)
		}
	}
	id := sum.ProposalID
	v := post(t, srv.URL+"/gov/proposals/"+id+"/ballots", "application/cose", a.sign(t, govwire.MsgBallot, id, govwire.Ballot{Ballot: accept}))
	v.json(t, &sum)
	if v.status != 200 || sum.State != govwire.StateOpen || sum.BallotCount != 1 {
		t.Fatalf("first ballot: %d %s", v.status, v.body)
	}
	v = post(t, srv.URL+"/gov/proposals/"+id+"/ballots", "application/cose", b.sign(t, govwire.MsgBallot, id, govwire.Ballot{Ballot: accept}))
	v.json(t, &sum)
	if v.status != 200 || sum.State != govwire.StateAccepted || !sum.Votes[a.id] || !sum.Votes[b.id] {
		t.Fatalf("second ballot: %d %s", v.status, v.body)
	}
	if !strings.Contains(e.kv(govwire.MapSCITTConfig, "configuration"), `"max_statement_bytes":2048`) {
		t.Fatal("the accepted proposal was not applied")
	}

	// A ballot signed for another proposal than the URL's.
	p2 := post(t, srv.URL+"/gov/proposals", "application/cose", a.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(4096)}}))
	p2.json(t, &sum)
	bad := post(t, srv.URL+"/gov/proposals/"+id+"/ballots", "application/cose", b.sign(t, govwire.MsgBallot, sum.ProposalID, govwire.Ballot{Ballot: accept}))
	var ce httpapi.CCFError
	bad.json(t, &ce)
	if bad.status != 400 || ce.Error.Code != "RequestDoesNotMatchURL" {
		t.Fatalf("mismatched ballot: %d %s", bad.status, bad.body)
	}
}

func TestClassicErrors(t *testing.T) {
	e := newEnv(t, 1)
	srv := e.serve()
	for _, c := range []struct {
		name, path, ctype string
		body              []byte
		status            int
		code              string
	}{
		{"JSON body", "/gov/proposals", "application/json", []byte(`{"actions": []}`), 415, "UnsupportedContentType"},
		{"not COSE", "/gov/proposals", "application/cose", []byte("junk"), 400, "InvalidGovernanceRequest"},
		{"inactive proposer", "/gov/proposals", "application/cose", e.m[0].sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(2048)}}), 403, "MemberNotActive"},
		{"wrong type", "/gov/ack", "application/cose", e.m[0].sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(1024)}}), 400, "WrongMessageType"},
		{"stranger", "/gov/ack/update_state_digest", "application/cose", newTestMember(t, "x").sign(t, govwire.MsgStateDigest, "", []byte("{}")), 401, "UnknownMember"},
	} {
		r := post(t, srv.URL+c.path, c.ctype, c.body)
		var ce httpapi.CCFError
		r.json(t, &ce)
		if r.status != c.status || ce.Error.Code != c.code || ce.Error.Message == "" {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
}

// A bundle the node's app validator refuses is a 400 at proposal time, on
// both APIs, with the validator's message.
func TestValidateAppOverHTTP(t *testing.T) {
	e := newEnvConfig(t, 1, gov.Config{ValidateApp: func(b []byte) error {
		if bytes.Contains(b, []byte("MARKER")) {
			return errors.New("endpoints/hello.js: SyntaxError: Unexpected token MARKER")
		}
		return nil
	}})
	e.activate(e.m[0])
	srv := e.serve()
	bad := withBundle(t, func(b map[string]any) { b["modules"].([]any)[0].(map[string]any)["module"] = "MARKER(" })
	prop := govwire.Proposal{Actions: []govwire.Action{action("set_js_app", `{"bundle": `+string(bad)+`}`)}}

	r := post(t, srv.URL+"/gov/proposals", "application/cose", e.m[0].sign(t, govwire.MsgProposal, "", prop))
	var ce httpapi.CCFError
	r.json(t, &ce)
	if r.status != 400 || ce.Error.Code != "ProposalFailedToValidate" || !strings.Contains(ce.Error.Message, "action 0 (set_js_app): endpoints/hello.js: SyntaxError: Unexpected token MARKER") {
		t.Fatalf("classic: %d %s", r.status, r.body)
	}
	// The same proposal again would be the same request within the same
	// second, so vary it: a second, valid, action first.
	prop.Actions = append([]govwire.Action{configAction(2048)}, prop.Actions...)
	r = post(t, srv.URL+"/gov/members/proposals:create?api-version=2024-07-01", "application/cose", e.m[0].sign(t, govwire.MsgProposal, "", prop))
	p := registry.DecodeProblem(r.status, r.body)
	if r.status != 400 || p.Title != "ProposalFailedToValidate" || !strings.Contains(p.Detail, "action 1 (set_js_app): endpoints/hello.js: SyntaxError: Unexpected token MARKER") {
		t.Fatalf("current API: %d %+v", r.status, p)
	}
}
