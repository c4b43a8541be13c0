package gov

import (
	"context"
	"time"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"github.com/charterlog/charter/policy"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/recovery"
)

// nodePEM is a node key's PEM and CCF's id of it.
func nodePEM(t *testing.T) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), hex.EncodeToString(sum[:])
}

// applied returns o's writes applied to st (a copy).
func applied(st memState, o *overlay) memState {
	out := memState{}
	for m, kv := range st {
		out[m] = map[string]string{}
		for k, v := range kv {
			out[m][k] = v
		}
	}
	for _, w := range o.order {
		if out[w.Map] == nil {
			out[w.Map] = map[string]string{}
		}
		if w.Delete {
			delete(out[w.Map], string(w.Key))
		} else {
			out[w.Map][string(w.Key)] = string(w.Value)
		}
	}
	return out
}

// The triggers: a ledger rekey and a shares refresh both count a rekey
// request; the others throw a catchable "not served" Error; none works
// outside apply.
func TestCCFNodeTriggers(t *testing.T) {
	o := newOverlay(memState{recovery.MapRekey: {recovery.KeyRekeyRequested: "2"}})
	mustCCF(t, o, true, `ccf.node.triggerLedgerRekey(); ccf.node.triggerRecoverySharesRefresh()`)
	if v, _, _ := o.Get(recovery.MapRekey, recovery.KeyRekeyRequested); v != "4" {
		t.Fatalf("rekey requests %q, want 4", v)
	}
	o = newOverlay(memState{})
	mustCCF(t, o, true, `ccf.node.triggerLedgerRekey()`)
	if v, _, _ := o.Get(recovery.MapRekey, recovery.KeyRekeyRequested); v != "1" {
		t.Fatalf("first rekey request %q, want 1", v)
	}
	for _, f := range []string{"ccf.node.triggerLedgerChunk()", "ccf.node.triggerSnapshot()", "ccf.node.triggerACMERefresh([])",
		"ccf.network.generateEndorsedCertificate('csr', '2020', 1)", "ccf.network.generateNetworkCertificate('2020', 1)"} {
		out := mustCCF(t, newOverlay(memState{}), true, `try { `+f+` } catch (e) { return e instanceof Error && e.message.includes("not served") } return "no throw"`)
		if out != true {
			t.Errorf("%s: %v, want a not-served Error", f, out)
		}
	}
	for _, f := range []string{"ccf.node.triggerLedgerRekey()", "ccf.node.triggerRecoverySharesRefresh()"} {
		o := newOverlay(memState{})
		out := mustCCF(t, o, false, `try { `+f+` } catch (e) { return e instanceof TypeError } return "no throw"`)
		if out != true || len(o.order) != 0 {
			t.Errorf("%s outside apply: %v, %d writes", f, out, len(o.order))
		}
	}
	for m := range ccfUnservedMaps {
		o := newOverlay(memState{})
		_, _, err := runCCF(t, o, true, hostEnv{}, `ccf.kv[`+jsString(m)+`].set(ccf.strToBuf("k"), ccf.jsonCompatibleToBuf("AllowedToJoin"))`)
		if err == nil || !strings.Contains(err.Error(), "not served") || len(o.order) != 0 {
			t.Errorf("a write to %s: %v, %d writes", m, err, len(o.order))
		}
	}
	bad := newOverlay(memState{recovery.MapRekey: {recovery.KeyRekeyRequested: `"x"`}})
	if _, _, err := runCCF(t, bad, true, hostEnv{}, `ccf.node.triggerLedgerRekey()`); err == nil || !strings.Contains(err.Error(), "not a count") {
		t.Fatalf("corrupt counter: %v", err)
	}
}

func TestCCFLatestLedgerSecretSeqno(t *testing.T) {
	if out := mustCCF(t, newOverlay(memState{}), false, `return ccf.network.getLatestLedgerSecretSeqno()`); out != int64(0) {
		t.Fatalf("no secrets: %v (%T)", out, out)
	}
	st := memState{recovery.MapLedgerSecrets: {"1": "{}", "2": "{}"}}
	if out := mustCCF(t, newOverlay(st), false, `return ccf.network.getLatestLedgerSecretSeqno()`); out != int64(2) {
		t.Fatalf("two versions: %v", out)
	}
}

// public:ccf.gov.service.config is a view of public:ccf.gov.recovery's
// threshold: read, written, and refused for anything else.
func TestCCFServiceConfig(t *testing.T) {
	st := memState{govwire.MapRecovery: {"threshold": "2"}}
	const cfg = `const m = ccf.kv["public:ccf.gov.service.config"]; const k = new ArrayBuffer(8);`
	if out := mustCCF(t, newOverlay(st), false, cfg+`return ccf.bufToJsonCompatible(m.get(k)).recovery_threshold`); out != int64(2) {
		t.Fatalf("read %v", out)
	}
	if out := mustCCF(t, newOverlay(memState{}), false, cfg+`return ccf.bufToStr(m.get(k))`); out != "{}" {
		t.Fatalf("no threshold: %v", out)
	}
	if out := mustCCF(t, newOverlay(st), false, cfg+`let n = 0; m.forEach(() => n++); return [n, m.size, m.has(new ArrayBuffer(7))]`); !jsonEq(out, []any{int64(1), int64(1), false}) {
		t.Fatalf("forEach/size/has: %v", out)
	}
	o := newOverlay(st)
	mustCCF(t, o, true, cfg+`const c = ccf.bufToJsonCompatible(m.get(k)); c.recovery_threshold = 3; m.set(k, ccf.jsonCompatibleToBuf(c))`)
	if v, _, _ := o.Get(govwire.MapRecovery, "threshold"); v != "3" {
		t.Fatalf("threshold %q, want 3", v)
	}
	for _, c := range []struct{ name, body, want string }{
		{"other field", `m.set(k, ccf.jsonCompatibleToBuf({recovery_threshold: 2, reconfiguration_type: "TwoTransaction"}))`, "not served"},
		{"zero", `m.set(k, ccf.jsonCompatibleToBuf({recovery_threshold: 0}))`, "integer in [1, 255]"},
		{"fraction", `m.set(k, ccf.jsonCompatibleToBuf({recovery_threshold: 1.5}))`, "integer in [1, 255]"},
		{"too big", `m.set(k, ccf.jsonCompatibleToBuf({recovery_threshold: 256}))`, "integer in [1, 255]"},
		{"string", `m.set(k, ccf.jsonCompatibleToBuf({recovery_threshold: "2"}))`, "integer in [1, 255]"},
		{"removed", `m.set(k, ccf.jsonCompatibleToBuf({}))`, "cannot be removed"},
		{"not an object", `m.set(k, ccf.jsonCompatibleToBuf([2]))`, "JSON object"},
		{"other key", `m.set(new ArrayBuffer(4), ccf.jsonCompatibleToBuf({recovery_threshold: 2}))`, "singleton key"},
		{"delete", `m.delete(k)`, "not removed"},
	} {
		o := newOverlay(st)
		_, _, err := runCCF(t, o, true, hostEnv{}, cfg+c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if v, _, _ := o.Get(govwire.MapRecovery, "threshold"); v != "2" {
			t.Errorf("%s: the threshold changed to %q", c.name, v)
		}
	}
	// No threshold yet: a config without one writes nothing.
	o = newOverlay(memState{})
	mustCCF(t, o, true, cfg+`m.set(k, ccf.jsonCompatibleToBuf({reconfiguration_type: null}))`)
	if len(o.order) != 0 {
		t.Fatalf("writes %v", o.order)
	}
}

func jsonEq(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// defaultConstitution is Charter's constitution.js, compiled.
type testConstitution struct{ c *constitution }

func defaultConstitution(t *testing.T) testConstitution {
	t.Helper()
	p, err := CompileConstitution(DefaultConstitution, policy.Limits{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return testConstitution{&constitution{p: p}}
}

func (c testConstitution) validate(ctx context.Context, o *overlay, proposal string) error {
	return c.c.validate(ctx, o, proposal)
}

// apply runs the constitution's apply over o, as an accepted proposal's.
func (c testConstitution) apply(ctx context.Context, o *overlay, proposal, id string) error {
	g, _ := hostGlobals(o, true, c.c.env)
	_, err := c.c.p.CallWith(ctx, g, "apply", proposal, id)
	return err
}

// public:ccf.gov.nodes.info in ccf.kv is keyed by CCF's hex node id, and
// still reads Charter's raft id; constitution.js's node actions take
// either.
func TestCCFNodeIDs(t *testing.T) {
	p1, id1 := nodePEM(t)
	_, id2 := nodePEM(t)
	rec, _ := json.Marshal(map[string]string{"status": "Pending", "public_key": p1})
	st := memState{govwire.MapNodesInfo: {"1": string(rec), "2": `{"status":"Trusted"}`}}
	const nodes = `const m = ccf.kv["public:ccf.gov.nodes.info"];`
	out := mustCCF(t, newOverlay(st), false, nodes+`const ks = []; m.forEach((v, k) => ks.push(ccf.bufToStr(k))); return ks`)
	if !jsonEq(out, []string{id1, "2"}) {
		t.Fatalf("keys %v, want [%s 2]", out, id1)
	}
	for _, k := range []string{id1, strings.ToUpper(id1), "1"} {
		if out := mustCCF(t, newOverlay(st), false, nodes+`return ccf.bufToJsonCompatible(m.get(ccf.strToBuf(`+jsString(k)+`))).status`); out != "Pending" {
			t.Errorf("get %s: %v", k, out)
		}
	}
	if out := mustCCF(t, newOverlay(st), false, nodes+`return m.get(ccf.strToBuf(`+jsString(id2)+`)) === undefined`); out != true {
		t.Errorf("unknown hex id read: %v", out)
	}
	o := newOverlay(st)
	mustCCF(t, o, true, nodes+`const k = ccf.strToBuf(`+jsString(id1)+`); const r = ccf.bufToJsonCompatible(m.get(k)); r.status = "Trusted"; m.set(k, ccf.jsonCompatibleToBuf(r))`)
	var got map[string]any
	v, _, _ := o.Get(govwire.MapNodesInfo, "1")
	if json.Unmarshal([]byte(v), &got); got["status"] != "Trusted" || got["public_key"] != p1 {
		t.Fatalf("record 1 after a set by hex id: %s", v)
	}
	if _, ok, _ := o.Get(govwire.MapNodesInfo, id1); ok {
		t.Fatal("a set by hex id wrote a record under the hex id")
	}
	o = newOverlay(st)
	if _, _, err := runCCF(t, o, true, hostEnv{}, nodes+`m.set(ccf.strToBuf(`+jsString(id2)+`), ccf.jsonCompatibleToBuf({status: "Trusted"}))`); err == nil || !strings.Contains(err.Error(), "no node has id") || len(o.order) != 0 {
		t.Fatalf("set of an unknown hex id: %v, %d writes", err, len(o.order))
	}
	o = newOverlay(st)
	mustCCF(t, o, true, nodes+`m.delete(ccf.strToBuf(`+jsString(id1)+`))`)
	if _, ok, _ := o.Get(govwire.MapNodesInfo, "1"); ok {
		t.Fatal("delete by hex id left the record")
	}

	// constitution.js's actions, by hex id and by raft id.
	c := defaultConstitution(t)
	for _, tc := range []struct{ action, id, key, status string }{
		{"transition_node_to_trusted", id1, "1", "Trusted"},
		{"transition_node_to_trusted", "1", "1", "Trusted"},
		{"remove_node", strings.ToUpper(id1), "1", "Retired"},
	} {
		o := newOverlay(st)
		prop := `{"actions":[{"name":"` + tc.action + `","args":{"node_id":"` + tc.id + `"}}]}`
		if err := c.validate(t.Context(), o, prop); err != nil {
			t.Fatalf("%s %s validate: %v", tc.action, tc.id, err)
		}
		if err := c.apply(t.Context(), o, prop, "p"); err != nil {
			t.Fatalf("%s %s: %v", tc.action, tc.id, err)
		}
		after := applied(st, o)
		var r map[string]any
		_ = json.Unmarshal([]byte(after[govwire.MapNodesInfo][tc.key]), &r)
		if r["status"] != tc.status || len(after[govwire.MapNodesInfo]) != 2 {
			t.Errorf("%s %s: nodes %v", tc.action, tc.id, after[govwire.MapNodesInfo])
		}
	}
	// Governance never makes a node record: an unknown node is refused
	// (trusted) or left alone (removed).
	o = newOverlay(st)
	if err := c.apply(t.Context(), o, `{"actions":[{"name":"remove_node","args":{"node_id":"7"}}]}`, "p"); err != nil || len(o.order) != 0 {
		t.Errorf("remove_node of an unknown node: %v, %d writes", err, len(o.order))
	}
	for _, tc := range []struct{ id, want string }{{id2, "no node has id"}, {"7", "no node has id 7"}, {"node-1", "raft id (decimal) or CCF's node id"}} {
		o := newOverlay(st)
		prop := `{"actions":[{"name":"transition_node_to_trusted","args":{"node_id":"` + tc.id + `"}}]}`
		err := c.validate(t.Context(), o, prop)
		if err == nil {
			err = c.apply(t.Context(), o, prop, "p")
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.id, err, tc.want)
		}
	}
}

// JWT keys set through ccf.setJwtPublicSigningKeys are stored as
// constitution.js's set_jwt_public_signing_keys stores them.
func TestCCFJwtPublicSigningKeys(t *testing.T) {
	_, cert, _ := certPEM(t, "jwt", nil, nil, false)
	x5c := base64.StdEncoding.EncodeToString(cert.Raw)
	other := `[{"issuer":"https://other","jwk":{"e":"AQAB","kid":"k1","kty":"RSA","n":"nn"}}]`
	st := memState{govwire.MapJWTKeys: {"k1": other, "old": `[{"issuer":"https://iss","cert":"` + x5c + `"}]`}}
	o := newOverlay(st)
	mustCCF(t, o, true, `ccf.setJwtPublicSigningKeys("https://iss", {issuer: "https://iss"}, {keys: [
		{kid: "k1", kty: "EC", crv: "P-256", x: "xx", y: "yy"},
		{kid: "k2", kty: "RSA", x5c: [`+jsString(x5c)+`], issuer: "https://iss/tenant"}]})`)
	after := applied(st, o)[govwire.MapJWTKeys]
	var k1, k2 []jwtKeyEntry
	_ = json.Unmarshal([]byte(after["k1"]), &k1)
	_ = json.Unmarshal([]byte(after["k2"]), &k2)
	if len(k1) != 2 || k1[0].Issuer != "https://other" || k1[1].JWK["crv"] != "P-256" || k1[1].JWK["x"] != "xx" {
		t.Fatalf("k1 %s", after["k1"])
	}
	if len(k2) != 1 || k2[0].Cert != x5c || k2[0].Constraint != "https://iss/tenant" {
		t.Fatalf("k2 %s", after["k2"])
	}
	if _, ok := after["old"]; ok {
		t.Fatal("the issuer's old key was kept")
	}
	afterSt := applied(st, o)
	o = newOverlay(afterSt)
	mustCCF(t, o, true, `ccf.removeJwtPublicSigningKeys("https://iss")`)
	left := applied(afterSt, o)[govwire.MapJWTKeys]
	if len(left) != 1 || left["k1"] != other {
		t.Fatalf("after remove: %v", left)
	}
	for _, c := range []struct{ name, args, want string }{
		{"no keys", `"i", {}, {}`, "jwks must be"},
		{"no kid", `"i", {}, {keys: [{kty: "EC", crv: "P-256", x: "a", y: "b"}]}`, "kid must be"},
		{"bad x5c", `"i", {}, {keys: [{kid: "a", kty: "RSA", x5c: ["!!"]}]}`, "x5c must be"},
		{"x5c not a cert", `"i", {}, {keys: [{kid: "a", kty: "RSA", x5c: ["AAAA"]}]}`, "not a certificate"},
		{"bad curve", `"i", {}, {keys: [{kid: "a", kty: "EC", crv: "P-192", x: "a", y: "b"}]}`, "crv must be"},
		{"rsa no n", `"i", {}, {keys: [{kid: "a", kty: "RSA", e: "AQAB"}]}`, "needs n"},
		{"other kty", `"i", {}, {keys: [{kid: "a", kty: "oct", k: "x"}]}`, "kty must be RSA or EC"},
		{"key filter", `"i", {key_filter: "sgx"}, {keys: []}`, "not served"},
		{"metadata", `"i", "m", {keys: []}`, "metadata must be an object"},
		{"empty issuer", `"", {}, {keys: []}`, "issuer is empty"},
		{"issuer not a string", `1, {}, {keys: []}`, "must be a string"},
	} {
		o := newOverlay(st)
		_, _, err := runCCF(t, o, true, hostEnv{}, `ccf.setJwtPublicSigningKeys(`+c.args+`)`)
		if err == nil || !strings.Contains(err.Error(), c.want) || len(o.order) != 0 {
			t.Errorf("%s: %v (%d writes), want %q", c.name, err, len(o.order), c.want)
		}
	}
	o = newOverlay(st)
	if _, _, err := runCCF(t, o, false, hostEnv{}, `ccf.removeJwtPublicSigningKeys("https://iss")`); err == nil || len(o.order) != 0 {
		t.Fatalf("remove outside apply: %v", err)
	}
}

// Charter's remove_member keeps CCF's recovery check: an active recovery
// member cannot leave fewer recovery members than the threshold, and its
// removal asks for a rekey; a member without an encryption key leaves
// without one.
func TestRemoveMemberRecoveryCheck(t *testing.T) {
	ids := []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)}
	st := memState{govwire.MapMemberInfo: {}, govwire.MapMemberEncKeys: {}, govwire.MapMemberCerts: {}, govwire.MapRecovery: {"threshold": "2"}}
	for i, id := range ids {
		st[govwire.MapMemberInfo][id] = `{"status":"Active"}`
		st[govwire.MapMemberCerts][id] = "cert"
		if i < 2 {
			st[govwire.MapMemberEncKeys][id] = "key"
		}
	}
	c := defaultConstitution(t)
	remove := func(st memState, id string) (*overlay, error) {
		o := newOverlay(st)
		prop := `{"actions":[{"name":"remove_member","args":{"member_id":"` + id + `"}}]}`
		if err := c.validate(t.Context(), o, prop); err != nil {
			t.Fatal(err)
		}
		return o, c.apply(t.Context(), o, prop, "p")
	}
	if _, err := remove(st, ids[0]); err == nil || !strings.Contains(err.Error(), "fewer than the recovery threshold 2") {
		t.Fatalf("removing a recovery member below the threshold: %v", err)
	}
	o, err := remove(st, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := o.Get(recovery.MapRekey, recovery.KeyRekeyRequested); ok {
		t.Fatal("removing a member without an encryption key asked for a rekey")
	}
	st[govwire.MapRecovery]["threshold"] = "1"
	o, err = remove(st, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	after := applied(st, o)
	if _, ok := after[govwire.MapMemberInfo][ids[0]]; ok || after[recovery.MapRekey][recovery.KeyRekeyRequested] != "1" {
		t.Fatalf("after removing a recovery member: info %v, rekey requests %q", after[govwire.MapMemberInfo], after[recovery.MapRekey][recovery.KeyRekeyRequested])
	}
}
