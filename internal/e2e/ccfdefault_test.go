package e2e

import (
	"strconv"

	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"github.com/charterlog/charter/internal/config"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ccfDefaultEnv names a directory holding CCF's default constitution
// (microsoft/CCF samples/constitutions/default: actions.js, validate.js,
// resolve.js, apply.js). Its text is not Charter's to ship, so the test
// that runs it reads it from there and is skipped without it.
const ccfDefaultEnv = "CHARTER_CCF_DEFAULT_CONSTITUTION"

// CCF's default constitution, unchanged, governs a Charter network
// through the scenario of ccfDefaultScenario.
func TestCCFDefaultConstitution(t *testing.T) {
	dir := os.Getenv(ccfDefaultEnv)
	if dir == "" {
		t.Skipf("set %s to a directory holding CCF's samples/constitutions/default (actions.js, validate.js, resolve.js, apply.js) to run it", ccfDefaultEnv)
	}
	t.Parallel()
	var b strings.Builder
	for _, f := range []string{"actions.js", "validate.js", "resolve.js", "apply.js"} {
		b.Write(mustRead(t, filepath.Join(dir, f)))
		b.WriteString("\n")
	}
	ccfDefaultScenario(t, b.String())
}

// The CCF-style test constitution, with the actions that call every
// ccf.* function CCF's default constitution calls (testdata/ccfdefault),
// governs a Charter network through the same scenario, so CI proves the
// API the default needs without shipping the default's text.
func TestCCFDefaultStyleConstitution(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for _, f := range []string{"ccfconstitution/actions.js", "ccfdefault/actions.js", "ccfconstitution/validate.js", "ccfconstitution/resolve.js", "ccfconstitution/apply.js"} {
		b.Write(mustRead(t, filepath.Join("testdata", f)))
		b.WriteString("\n")
	}
	ccfDefaultScenario(t, b.String())
}

// ccfDefaultScenario creates a network governed by constitution src (two
// members), and through CCF's actions: adds two recovery members, opens
// the service, sets the recovery threshold (CCF's service.config), rekeys
// the ledger, registers a JWT issuer with its keys, trusts a node by CCF's
// hex id, is refused removing a recovery member below the threshold and
// then removes one; each effect is checked where Charter shows it.
func ccfDefaultScenario(t *testing.T, src string) {
	dir := t.TempDir()
	constPath := filepath.Join(dir, "constitution.js")
	if err := os.WriteFile(constPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	m2 := newGovMember(t, dir, "m2", elliptic.P256())
	n := startConstitutionNode(t, dir, []*govMember{m1, m2}, constPath)
	for _, m := range []*govMember{m1, m2} {
		if out, err := govCLI(t, n, m, "ack"); err != nil {
			t.Fatalf("ack as %s: %v\n%s", m.Name, err, out)
		}
	}
	voters := []*govMember{m1, m2}
	// The proposer; a request identical to one made in the same second
	// is a replay, so a repeated proposal comes from another member.
	proposer := m1
	vote := func(action string, args any) proposalOut {
		t.Helper()
		// CCF's actions without arguments (checkNone) take none at all.
		flags := []string{"--action", action}
		if args != nil {
			ab, err := json.Marshal(args)
			if err != nil {
				t.Fatal(err)
			}
			flags = append(flags, "--args", string(ab))
		}
		p := govJSON(t, n, proposer, "propose", flags...)
		for _, v := range voters {
			if p.State != "Open" {
				break
			}
			p = govJSON(t, n, v, "vote", p.ProposalID, "--accept")
		}
		return p
	}
	accept := func(action string, args any) {
		t.Helper()
		wantState(t, action, vote(action, args), "Accepted")
	}
	logPath := filepath.Join(dir, "charterd.log")
	fails := func(action string, args any, why string) {
		t.Helper()
		wantState(t, action, vote(action, args), "Failed")
		eventually(t, 5*time.Second, "the node logs why "+action+" failed", func() error {
			b, _ := os.ReadFile(logPath)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "proposal failed in apply") && strings.Contains(l, why) {
					return nil
				}
			}
			return fmt.Errorf("no line says %q", why)
		})
	}

	// Two recovery members (RSA encryption keys), activated.
	var rec []*govMember
	for _, name := range []string{"r1", "r2"} {
		m := newGovMember(t, dir, name, elliptic.P256())
		_, pub, _ := encryptionKey(t, dir, name, false)
		accept("set_member", map[string]any{"cert": string(mustRead(t, m.CertPath)), "encryption_pub_key": pub})
		if out, err := govCLI(t, n, m, "ack"); err != nil {
			t.Fatalf("ack as %s: %v\n%s", name, err, out)
		}
		rec = append(rec, m)
		voters = append(voters, m)
	}
	accept("transition_service_to_open", map[string]any{"next_service_identity": string(mustRead(t, n.CertPath))})
	eventually(t, 10*time.Second, "the service is Open", func() error {
		var nw struct {
			Status string `json:"service_status"`
		}
		if err := json.Unmarshal(n.get(t, "/node/network").Body, &nw); err != nil || nw.Status != "Open" {
			return fmt.Errorf("service_status %q (%v)", nw.Status, err)
		}
		return nil
	})

	// set_recovery_threshold writes CCF's service.config, which is
	// Charter's threshold: the primary shares among the two.
	recIDs := []string{rec[0].ID, rec[1].ID}
	slices.Sort(recIDs)
	accept("set_recovery_threshold", map[string]any{"recovery_threshold": 2})
	shared := n.waitSharing(t, "a sharing with threshold 2 among the recovery members", func(s *sharingView) error {
		got := slices.Clone(s.Members)
		slices.Sort(got)
		if s.Threshold != 2 || !slices.Equal(got, recIDs) {
			return fmt.Errorf("sharing %+v", s)
		}
		return nil
	})
	// More than there are active recovery members: refused.
	fails("set_recovery_threshold", map[string]any{"recovery_threshold": 3}, "recovery threshold")

	accept("trigger_ledger_rekey", nil)
	rekeyed := n.waitSharing(t, "a new ledger secret version after the rekey", func(s *sharingView) error {
		if s.LedgerSecretVersion <= shared.LedgerSecretVersion {
			return fmt.Errorf("sharing of version %d", s.LedgerSecretVersion)
		}
		return nil
	})

	// A JWT issuer with its keys, stored as Charter's own action stores
	// them; a JS app reads them back from the governed map.
	accept("set_jwt_issuer", map[string]any{"issuer": "https://issuer.example", "jwks": map[string]any{"keys": []any{
		map[string]any{"kid": "k1", "kty": "EC", "crv": "P-256", "x": "eHg", "y": "eXk"}}}})
	mod := `export function key(request) {
  const v = ccf.kv["public:ccf.gov.jwt.public_signing_keys_metadata"].get(ccf.strToBuf("k1"));
  return { body: v === undefined ? [] : ccf.bufToJsonCompatible(v) };
}`
	accept("set_js_app", map[string]any{"bundle": map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/jwtkey": map[string]any{"get": map[string]any{
			"js_module": "m.js", "js_function": "key", "authn_policies": []string{"no_auth"},
			"forwarding_required": "never", "mode": "readonly"}}}},
		"modules": []map[string]string{{"name": "m.js", "module": mod}},
	}})
	var keys []struct {
		Issuer string            `json:"issuer"`
		JWK    map[string]string `json:"jwk"`
	}
	readKeys := func() error {
		r, err := n.do(http.MethodGet, "/app/jwtkey", "", nil)
		if err != nil || r.Status != http.StatusOK {
			return fmt.Errorf("GET /app/jwtkey: %v %+v", err, r)
		}
		keys = nil
		return json.Unmarshal(r.Body, &keys)
	}
	eventually(t, 10*time.Second, "the app serves", readKeys)
	if len(keys) != 1 || keys[0].Issuer != "https://issuer.example" || keys[0].JWK["x"] != "eHg" || keys[0].JWK["crv"] != "P-256" {
		t.Fatalf("the JWT key as stored: %+v", keys)
	}
	accept("remove_jwt_issuer", map[string]any{"issuer": "https://issuer.example"})
	if err := readKeys(); err != nil || len(keys) != 0 {
		t.Fatalf("the JWT key after remove_jwt_issuer: %v %+v", err, keys)
	}

	// Nodes by CCF's hex id, as /node/network/nodes reports it.
	var nodes struct {
		Nodes []struct {
			NodeID string `json:"node_id"`
			Status string `json:"status"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(n.get(t, "/node/network/nodes").Body, &nodes); err != nil || len(nodes.Nodes) != 1 || len(nodes.Nodes[0].NodeID) != 64 {
		t.Fatalf("/node/network/nodes: %v %+v", err, nodes)
	}
	accept("transition_node_to_trusted", map[string]any{"node_id": nodes.Nodes[0].NodeID, "valid_from": "20250101000000Z"})
	fails("transition_node_to_trusted", map[string]any{"node_id": strings.Repeat("ab", 32), "valid_from": "20250101000000Z"}, "No such node: "+strings.Repeat("ab", 32))

	// remove_member's recovery check: one recovery member would be left
	// under threshold 2.
	fails("remove_member", map[string]any{"member_id": rec[0].ID}, "would be less than recovery threshold (2)")
	assertMemberStatus(t, n, map[string]string{m1.ID: "Active", m2.ID: "Active", rec[0].ID: "Active", rec[1].ID: "Active"})
	accept("set_recovery_threshold", map[string]any{"recovery_threshold": 1})
	proposer = m2
	accept("remove_member", map[string]any{"member_id": rec[0].ID})
	n.waitSharing(t, "a sharing without the removed member, of a new version", func(s *sharingView) error {
		if s.Threshold != 1 || !slices.Equal(s.Members, []string{rec[1].ID}) || s.LedgerSecretVersion <= rekeyed.LedgerSecretVersion {
			return fmt.Errorf("sharing %+v", s)
		}
		return nil
	})
	r := n.get(t, "/gov/service/members")
	if strings.Contains(string(r.Body), rec[0].ID) {
		t.Fatalf("the removed member is still listed: %s", r.Body)
	}

	// What Charter does not have is refused by name.
	voters = []*govMember{m1, m2, rec[1]}
	fails("trigger_snapshot", nil, "triggerSnapshot is not served by Charter")
}

// joinDev starts a node that joins the development network n and waits
// until n records it; it returns the joiner's data directory and CCF's
// hex id of it (as /node/network/nodes reports it).
func joinDev(t *testing.T, n *node, raftID uint64) (string, string) {
	t.Helper()
	jdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(jdir, "service_cert.pem"), mustRead(t, n.CertPath), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DataDir: jdir, Addr: "127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0]), LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(jdir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	runCharterd(t, jdir, filepath.Join(jdir, "charterd.log"), "join", "--config", cfgPath, "--target", n.URL)
	var id string
	eventually(t, 30*time.Second, fmt.Sprintf("node %d recorded as a learner", raftID), func() error {
		for _, x := range ccfNodes(t, n) {
			if x.RaftID == raftID && x.Role == "learner" && len(x.NodeID) == 64 {
				id = x.NodeID
				return nil
			}
		}
		return fmt.Errorf("%+v", ccfNodes(t, n))
	})
	return jdir, id
}

type ccfNodeView struct {
	NodeID string `json:"node_id"`
	RaftID uint64 `json:"raft_id"`
	Role   string `json:"role"`
	Status string `json:"status"`
}

func ccfNodes(t *testing.T, n *node) []ccfNodeView {
	t.Helper()
	var out struct{ Nodes []ccfNodeView }
	if err := json.Unmarshal(n.get(t, "/node/network/nodes").Body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Nodes
}

// A pending node is trusted by CCF's hex node id, as CCF's tools name it:
// once through Charter's constitution (constitution.js), once through a
// CCF-style constitution (ccf.kv's public:ccf.gov.nodes.info keyed by hex
// id; CCF's default constitution itself when CHARTER_CCF_DEFAULT_CONSTITUTION
// names it); each becomes a voter and receives the secrets. A hex id no node
// has fails the proposal and changes nothing.
func TestTrustNodeByCCFID(t *testing.T) {
	n := startNode(t, t.TempDir())
	promoted := func(raftID uint64, dir string) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("node %d promoted, with the service key", raftID), func() error {
			for _, x := range ccfNodes(t, n) {
				if x.RaftID == raftID && x.Role != "voter" {
					return fmt.Errorf("node %d is %s", raftID, x.Role)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "service_key.sealed")); err != nil {
				return err
			}
			return nil
		})
	}
	m0 := devMember(n)
	unknown := strings.Repeat("cd", 32)
	refused := func(args any) {
		t.Helper()
		ab, _ := json.Marshal(args)
		p := govJSON(t, n, m0, "propose", "--action", "transition_node_to_trusted", "--args", string(ab))
		wantState(t, "trusting an unknown hex id", govJSON(t, n, m0, "vote", p.ProposalID, "--accept"), "Failed")
	}

	dir2, id2 := joinDev(t, n, 2)
	refused(map[string]string{"node_id": unknown})
	devGovAccept(t, n, "transition_node_to_trusted", map[string]string{"node_id": id2})
	promoted(2, dir2)

	// CCF's default constitution itself when the environment names it.
	files := []string{"ccfconstitution/actions.js", "ccfdefault/actions.js", "ccfconstitution/validate.js", "ccfconstitution/resolve.js", "ccfconstitution/apply.js"}
	for i := range files {
		files[i] = filepath.Join("testdata", files[i])
	}
	if dir := os.Getenv(ccfDefaultEnv); dir != "" {
		files = []string{filepath.Join(dir, "actions.js"), filepath.Join(dir, "validate.js"), filepath.Join(dir, "resolve.js"), filepath.Join(dir, "apply.js")}
	}
	var b strings.Builder
	for _, f := range files {
		b.Write(mustRead(t, f))
		b.WriteString("\n")
	}
	devGovAccept(t, n, "set_constitution", map[string]string{"constitution": b.String()})
	dir3, id3 := joinDev(t, n, 3)
	refused(map[string]string{"node_id": unknown, "valid_from": "20250101000000Z"})
	devGovAccept(t, n, "transition_node_to_trusted", map[string]string{"node_id": strings.ToUpper(id3), "valid_from": "20250101000000Z"})
	promoted(3, dir3)
}
