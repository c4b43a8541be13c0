package e2e

import (
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocose "github.com/veraison/go-cose"

	"github.com/charterlog/charter/internal/config"
)

// ccfConstitution is the CCF-style constitution in testdata, its modules
// concatenated in one source as CCF's set_constitution bundles them.
func ccfConstitution(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"actions.js", "validate.js", "resolve.js", "apply.js"} {
		b.Write(mustRead(t, filepath.Join("testdata", "ccfconstitution", f)))
		b.WriteString("\n")
	}
	return b.String()
}

// startConstitutionNode is startMembersNode for a network created with
// the constitution in file constitution.
func startConstitutionNode(t *testing.T, dir string, members []*govMember, constitution string) *node {
	t.Helper()
	dataDir := filepath.Join(dir, "data")
	cfg := config.Config{DataDir: dataDir, Addr: "127.0.0.1:0", LogLevel: "debug", Constitution: constitution}
	for _, m := range members {
		cfg.Members = append(cfg.Members, m.CertPath)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	n := runCharterd(t, dataDir, filepath.Join(dir, "charterd.log"), "create", "--config", cfgPath)
	n.waitFor(t, "serving governance", func() bool {
		r, err := n.do(http.MethodGet, v7("/gov/service/members"), "", nil)
		return err == nil && r.Status == http.StatusOK && strings.Contains(string(r.Body), members[0].ID)
	})
	return n
}

// A constitution written in CCF's style against CCF's `ccf` API (a Map of
// actions with validate and apply, resolve by majority, ccf.kv with
// ArrayBuffers over CCF's map names) governs a Charter network from its
// creation: set_member, set_user, set_js_app, transition_service_to_open
// and set_constitution pass through it, and their effects show on the
// governance, node and app endpoints.
func TestCCFStyleConstitution(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := ccfConstitution(t)
	constPath := filepath.Join(dir, "constitution.js")
	if err := os.WriteFile(constPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	m2 := newGovMember(t, dir, "m2", elliptic.P384())
	n := startConstitutionNode(t, dir, []*govMember{m1, m2}, constPath)
	if got, err := govCLI(t, n, nil, "constitution"); err != nil || got != src {
		t.Fatalf("the network's constitution is not the CCF-style one: %v", err)
	}
	for _, m := range []*govMember{m1, m2} {
		if out, err := govCLI(t, n, m, "ack"); err != nil {
			t.Fatalf("charter gov ack as %s: %v\n%s", m.Name, err, out)
		}
	}

	argsFile := func(name string, args any) string {
		b, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "@" + p
	}
	// pass proposes as m1; one vote of two (later three) active members
	// is not a majority under the constitution's resolve, two are.
	pass := func(action string, args any) proposalOut {
		t.Helper()
		p := govJSON(t, n, m1, "propose", "--action", action, "--args", argsFile(action, args))
		wantState(t, action+" proposed", p, "Open")
		wantState(t, action+" after one vote", govJSON(t, n, m1, "vote", p.ProposalID, "--accept"), "Open")
		v := govJSON(t, n, m2, "vote", p.ProposalID, "--accept")
		wantState(t, action+" after two votes", v, "Accepted")
		return v
	}

	// The constitution's validate refuses what it does not take.
	if out, err := govCLI(t, n, m1, "propose", "--action", "set_member", "--args", `{"cert": "junk"}`); err == nil || !strings.Contains(out, "cert is not a PEM certificate") {
		t.Fatalf("set_member with a bad certificate: %v\n%s", err, out)
	}

	m3 := newGovMember(t, dir, "m3", elliptic.P256())
	pass("set_member", map[string]any{"cert": string(mustRead(t, m3.CertPath)), "member_data": map[string]any{"role": "auditor"}})
	assertMemberStatus(t, n, map[string]string{m1.ID: "Active", m2.ID: "Active", m3.ID: "Accepted"})
	// The member set through ccf.kv activates as any other.
	if out, err := govCLI(t, n, m3, "ack"); err != nil {
		t.Fatalf("charter gov ack as m3: %v\n%s", err, out)
	}
	assertMemberStatus(t, n, map[string]string{m1.ID: "Active", m2.ID: "Active", m3.ID: "Active"})

	user := newGovMember(t, dir, "user0", elliptic.P256())
	pass("set_user", map[string]any{"cert": string(mustRead(t, user.CertPath))})

	mod := `export function echo(request) {
  return { body: { id: request.caller.id, content: ccf.bufToStr(request.caller.cose.content) } };
}`
	bundle := map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/echo": map[string]any{"post": map[string]any{
			"js_module": "endpoints/m.js", "js_function": "echo", "authn_policies": []string{"user_cose_sign1"},
			"forwarding_required": "always", "mode": "readonly"}}}},
		"modules": []map[string]string{{"name": "endpoints/m.js", "module": mod}},
	}
	pass("set_js_app", map[string]any{"bundle": bundle})

	status := func() string {
		var nw struct {
			Status string `json:"service_status"`
		}
		r := n.get(t, "/node/network")
		if err := json.Unmarshal(r.Body, &nw); err != nil {
			t.Fatalf("/node/network: %v %s", err, r.Body)
		}
		return nw.Status
	}
	if s := status(); s != "Opening" {
		t.Fatalf("service status before transition_service_to_open: %s", s)
	}
	// ccf.node.transitionServiceToOpen refuses an identity that is not
	// the service's: the proposal fails, the service stays Opening.
	p := govJSON(t, n, m1, "propose", "--action", "transition_service_to_open", "--args", argsFile("wrong-identity", map[string]any{"next_service_identity": string(mustRead(t, m3.CertPath))}))
	govJSON(t, n, m1, "vote", p.ProposalID, "--accept")
	wantState(t, "transition_service_to_open with another identity", govJSON(t, n, m2, "vote", p.ProposalID, "--accept"), "Failed")
	if s := status(); s != "Opening" {
		t.Fatalf("service status after a failed transition: %s", s)
	}
	pass("transition_service_to_open", map[string]any{"next_service_identity": string(mustRead(t, n.CertPath))})
	eventually(t, 10*time.Second, "the service is Open", func() error {
		if s := status(); s != "Open" {
			return fmt.Errorf("service_status %s", s)
		}
		return nil
	})

	// The app deployed through CCF's modules and endpoints maps serves
	// the user set through CCF's users maps.
	msg := gocose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(gocose.AlgorithmES256)
	msg.Headers.Protected[gocose.HeaderLabelKeyID] = []byte(user.ID)
	msg.Payload = []byte("hello through a CCF constitution")
	signer, err := gocose.NewSigner(gocose.AlgorithmES256, user.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		t.Fatal(err)
	}
	body, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.do(http.MethodPost, "/app/echo", "application/cose", body)
	if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), user.ID) || !strings.Contains(string(r.Body), "hello through a CCF constitution") {
		t.Fatalf("POST /app/echo as the user: %v %+v", err, r)
	}

	// set_constitution through it: the new text is in force, and the
	// constitution's own apply dropped the proposal left open.
	open := govJSON(t, n, m2, "propose", "--action", "set_user", "--args", argsFile("open-user", map[string]any{"cert": string(mustRead(t, m3.CertPath))}))
	newConst := src + "\n// Amended by TestCCFStyleConstitution.\n"
	pass("set_constitution", map[string]any{"constitution": newConst})
	if got, err := govCLI(t, n, nil, "constitution"); err != nil || got != newConst {
		t.Fatalf("constitution after set_constitution: %v; amended text in force: %v", err, got == newConst)
	}
	wantState(t, "the open proposal after set_constitution", govJSON(t, n, nil, "show", open.ProposalID), "Dropped")
	// The amended constitution governs the next proposal.
	user1 := newGovMember(t, dir, "user1", elliptic.P256())
	pass("set_user", map[string]any{"cert": string(mustRead(t, user1.CertPath)), "user_data": map[string]any{"n": 1}})
}
