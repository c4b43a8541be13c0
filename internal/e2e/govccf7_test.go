package e2e

import (
	"crypto/elliptic"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
)

// CCF 7's governance API, with api-version=2024-07-01, through a member's
// whole lifecycle (Accepted; state digest update; ack; Active) and a
// proposal's (create, get, list, ballots submitted, Accepted; another
// withdrawn), raw HTTP with COSE_Sign1 requests as CCF 7's clients send
// them. The answers' field names and types are those of CCF's published
// schema for 2024-07-01 (doc/schemas/gov/2024-07-01/gov.json of
// microsoft/CCF: Acks.StateDigest, ServiceState.Member, Proposals.Proposal,
// PagedProposal, PagedMember, ServiceState.ServiceInfo, ServiceState.JsApp,
// ServiceState.JoinPolicies). Callers who must be refused are: a request
// without api-version or with one CCF 7 does not serve, an Accepted member's
// proposal, another member's digest update, and a withdrawal by a member
// who did not propose; each writes nothing.
func TestGovCCF7Lifecycle(t *testing.T) {
	dir := t.TempDir()
	m1 := newGovMember(t, dir, "m1", elliptic.P384())
	m2 := newGovMember(t, dir, "m2", elliptic.P256())
	n := startMembersNode(t, dir, []*govMember{m1, m2})
	hex64 := regexp.MustCompile(`^[a-f0-9]{64}$`)
	const version = "?api-version=2024-07-01"

	post := func(path string, body []byte) *response {
		t.Helper()
		return postGov(t, n, path, "application/cose", body)
	}
	object := func(what string, r *response, status int) map[string]any {
		t.Helper()
		if r.Status != status || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s %s, want %d JSON", what, r.Status, r.Header.Get("Content-Type"), truncate(r.Body, 300), status)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return m
	}
	// Each field present, of the schema's JSON type.
	shape := func(what string, m map[string]any, fields map[string]string) {
		t.Helper()
		for f, typ := range fields {
			v, ok := m[f]
			got := "absent"
			switch v.(type) {
			case string:
				got = "string"
			case float64:
				got = "integer"
			case bool:
				got = "boolean"
			case map[string]any:
				got = "object"
			case []any:
				got = "array"
			case nil:
				if ok {
					got = "null"
				}
			}
			if got != typ {
				t.Errorf("%s: %q is %s (%v), want %s", what, f, got, v, typ)
			}
		}
	}
	member := func(m *govMember) map[string]any {
		t.Helper()
		got := object("GET member "+m.Name, n.get(t, "/gov/service/members/"+m.ID+version), http.StatusOK)
		shape("ServiceState.Member", got, map[string]string{"memberId": "string", "status": "string", "certificate": "string"})
		if got["memberId"] != m.ID || !strings.Contains(got["certificate"].(string), "BEGIN CERTIFICATE") {
			t.Errorf("member %s: %v", m.Name, got)
		}
		return got
	}

	// The api-version is required, and must be one CCF 7 serves; refused
	// before the body is read, so nothing is written.
	update := m1.sign(t, govwire.MsgStateDigest, "", []byte("{}"))
	mark := n.mark(t, "none")
	wantCCFError(t, "no api-version", post("/gov/members/state-digests/"+m1.ID+":update", update), http.StatusBadRequest, "MissingApiVersionParameter")
	wantCCFError(t, "api-version 2022-01-01", post("/gov/members/state-digests/"+m1.ID+":update?api-version=2022-01-01", update), http.StatusBadRequest, "UnsupportedApiVersionValue")
	wantCCFError(t, "GET without api-version", n.get(t, "/gov/service/members"), http.StatusBadRequest, "MissingApiVersionParameter")
	n.nothingWritten(t, "requests without a served api-version", mark, "none")
	// The older version CCF 7 accepts is served too.
	if r := n.get(t, "/gov/service/info?api-version=2023-06-01-preview"); r.Status != http.StatusOK {
		t.Errorf("api-version 2023-06-01-preview: %d %s", r.Status, r.Body)
	}

	// Member lifecycle: Accepted, a state digest issued to it, acked:
	// Active. Another member cannot ask for m1's digest.
	if got := member(m1); got["status"] != "Accepted" {
		t.Fatalf("m1 is %v before its ack, want Accepted", got["status"])
	}
	early, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{{Name: "set_scitt_configuration", Args: json.RawMessage(`{"max_statement_bytes": 50000}`)}}})
	mark = n.mark(t, "none")
	wantCCFError(t, "an Accepted member's proposal", post("/gov/members/proposals:create"+version, m1.sign(t, govwire.MsgProposal, "", early)),
		http.StatusForbidden, "MemberNotActive")
	wantCCFError(t, "m2 updating m1's digest", post("/gov/members/state-digests/"+m1.ID+":update"+version, m2.sign(t, govwire.MsgStateDigest, "", []byte("{}"))),
		http.StatusBadRequest, "RequestDoesNotMatchURL")
	n.nothingWritten(t, "m2 updating m1's digest", mark, "none")
	for _, m := range []*govMember{m1, m2} {
		r := post("/gov/members/state-digests/"+m.ID+":update"+version, m.sign(t, govwire.MsgStateDigest, "", []byte("{}")))
		digest := object(m.Name+"'s :update", r, http.StatusOK)
		shape("Acks.StateDigest", digest, map[string]string{"memberId": "string", "stateDigest": "string"})
		d, _ := digest["stateDigest"].(string)
		if digest["memberId"] != m.ID || !hex64.MatchString(d) || r.Header.Get("x-ms-ccf-transaction-id") == "" {
			t.Fatalf("%s's :update: %v (transaction %q)", m.Name, digest, r.Header.Get("x-ms-ccf-transaction-id"))
		}
		if again := object("GET state digest", n.get(t, "/gov/members/state-digests/"+m.ID+version), http.StatusOK); again["stateDigest"] != d {
			t.Errorf("GET state digest of %s: %v, want %s", m.Name, again, d)
		}
		ack, _ := json.Marshal(map[string]string{"stateDigest": d}) // CCF 7's name for it
		r = post("/gov/members/state-digests/"+m.ID+":ack"+version, m.sign(t, govwire.MsgAck, "", ack))
		if r.Status != http.StatusNoContent || len(r.Body) != 0 || r.Header.Get("x-ms-ccf-transaction-id") == "" {
			t.Fatalf("%s's :ack: %d %q (transaction %q), want 204", m.Name, r.Status, r.Body, r.Header.Get("x-ms-ccf-transaction-id"))
		}
		if got := member(m); got["status"] != "Active" {
			t.Fatalf("%s is %v after its ack, want Active", m.Name, got["status"])
		}
	}
	members := object("GET members", n.get(t, "/gov/service/members"+version), http.StatusOK)
	shape("PagedMember", members, map[string]string{"value": "array"})
	if len(members["value"].([]any)) != 2 {
		t.Errorf("members: %v", members)
	}

	// A proposal's lifecycle: created Open, no ballots; m1's ballot leaves
	// it Open (one of two); m2's accepts it.
	proposalOf := func(what string, r *response) map[string]any {
		t.Helper()
		p := object(what, r, http.StatusOK)
		shape("Proposals.Proposal", p, map[string]string{"proposalId": "string", "proposerId": "string",
			"proposalState": "string", "ballotCount": "integer", "ballotSubmitters": "array"})
		if id, _ := p["proposalId"].(string); !hex64.MatchString(id) {
			t.Errorf("%s: proposalId %v", what, p["proposalId"])
		}
		return p
	}
	submitters := func(p map[string]any) []string {
		var out []string
		for _, s := range p["ballotSubmitters"].([]any) {
			out = append(out, s.(string))
		}
		return out
	}
	config, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{{Name: "set_scitt_configuration", Args: json.RawMessage(`{"max_statement_bytes": 100000}`)}}})
	r := post("/gov/members/proposals:create"+version, m1.sign(t, govwire.MsgProposal, "", config))
	p := proposalOf("create", r)
	pid := p["proposalId"].(string)
	if p["proposerId"] != m1.ID || p["proposalState"] != "Open" || p["ballotCount"] != 0.0 || len(submitters(p)) != 0 || r.Header.Get("x-ms-ccf-transaction-id") == "" {
		t.Fatalf("created: %v", p)
	}
	if got := proposalOf("get", n.get(t, "/gov/members/proposals/"+pid+version)); got["proposalState"] != "Open" || got["proposerId"] != m1.ID {
		t.Errorf("GET proposal: %v", got)
	}
	if actions := object("GET actions", n.get(t, "/gov/members/proposals/"+pid+"/actions"+version), http.StatusOK); len(actions["actions"].([]any)) != 1 {
		t.Errorf("actions: %v", actions)
	}
	accept, _ := json.Marshal(govwire.Ballot{Ballot: "export function vote(proposal, proposerId) { return true }"})
	ballot := func(m *govMember) map[string]any {
		t.Helper()
		return proposalOf(m.Name+"'s ballot", post("/gov/members/proposals/"+pid+"/ballots/"+m.ID+":submit"+version, m.sign(t, govwire.MsgBallot, pid, accept)))
	}
	p = ballot(m1)
	if p["proposalState"] != "Open" || p["ballotCount"] != 1.0 || !slices.Equal(submitters(p), []string{m1.ID}) {
		t.Fatalf("after m1's ballot: %v", p)
	}
	if b := n.get(t, "/gov/members/proposals/"+pid+"/ballots/"+m1.ID+version); b.Status != http.StatusOK || !strings.Contains(string(b.Body), "return true") {
		t.Errorf("GET m1's ballot: %d %s", b.Status, b.Body)
	}
	list := object("list", n.get(t, "/gov/members/proposals"+version), http.StatusOK)
	shape("PagedProposal", list, map[string]string{"value": "array"})
	if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["proposalId"] != pid {
		t.Errorf("open proposals: %v, want %s", list, pid)
	}
	p = ballot(m2)
	want := []string{m1.ID, m2.ID}
	slices.Sort(want)
	shape("Proposals.Proposal (closed)", p, map[string]string{"finalVotes": "object"})
	if p["proposalState"] != "Accepted" || p["ballotCount"] != 2.0 || !slices.Equal(submitters(p), want) {
		t.Fatalf("after m2's ballot: %v", p)
	}
	if votes := p["finalVotes"].(map[string]any); votes[m1.ID] != true || votes[m2.ID] != true {
		t.Errorf("finalVotes %v", votes)
	}

	// Another proposal, withdrawn by its proposer (m2), after m1 is
	// refused; then no proposal is open.
	other, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{{Name: "set_scitt_configuration", Args: json.RawMessage(`{"max_statement_bytes": 200000}`)}}})
	q := proposalOf("create Q", post("/gov/members/proposals:create"+version, m2.sign(t, govwire.MsgProposal, "", other)))
	qid := q["proposalId"].(string)
	mark = n.mark(t, qid)
	wantCCFError(t, "m1 withdrawing m2's proposal", post("/gov/members/proposals/"+qid+":withdraw"+version, m1.sign(t, govwire.MsgWithdrawal, qid, []byte("{}"))),
		http.StatusForbidden, "NotProposer")
	n.nothingWritten(t, "m1 withdrawing m2's proposal", mark, qid)
	q = proposalOf("withdraw Q", post("/gov/members/proposals/"+qid+":withdraw"+version, m2.sign(t, govwire.MsgWithdrawal, qid, []byte("{}"))))
	if q["proposalState"] != "Withdrawn" || q["proposerId"] != m2.ID {
		t.Errorf("withdrawn: %v", q)
	}
	if list := object("list", n.get(t, "/gov/members/proposals"+version), http.StatusOK); len(list["value"].([]any)) != 0 {
		t.Errorf("open proposals after both closed: %v", list)
	}
	wantCCFError(t, "an unknown proposal", n.get(t, "/gov/members/proposals/"+strings.Repeat("0", 64)+version), http.StatusNotFound, "ProposalNotFound")
	wantCCFError(t, "an unknown member", n.get(t, "/gov/service/members/"+strings.Repeat("0", 64)+version), http.StatusNotFound, "ResourceNotFound")

	// The service reads.
	info := object("service info", n.get(t, "/gov/service/info"+version), http.StatusOK)
	shape("ServiceState.ServiceInfo", info, map[string]string{"status": "string", "certificate": "string",
		"recoveryCount": "integer", "creationTransactionId": "string"})
	app := object("javascript-app", n.get(t, "/gov/service/javascript-app"+version), http.StatusOK)
	shape("ServiceState.JsApp", app, map[string]string{"endpoints": "object"})
	policy := object("join-policy", n.get(t, "/gov/service/join-policy"+version), http.StatusOK)
	shape("ServiceState.JoinPolicies", policy, map[string]string{"sgx": "object", "snp": "object", "virtual": "object"})
	shape("ServiceState.SnpJoinPolicy", policy["snp"].(map[string]any), map[string]string{"measurements": "array",
		"hostData": "object", "uvmEndorsements": "object", "tcbVersions": "object"})
	shape("ServiceState.VirtualJoinPolicy", policy["virtual"].(map[string]any), map[string]string{"measurements": "array", "hostData": "array"})
	if c := n.get(t, "/gov/service/constitution"+version); c.Status != http.StatusOK || !strings.Contains(string(c.Body), "export function resolve") {
		t.Errorf("constitution: %d %s", c.Status, truncate(c.Body, 100))
	}
}
