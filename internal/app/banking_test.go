package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

func id(name string) string {
	s := sha256.Sum256([]byte("cert of " + name))
	return hex.EncodeToString(s[:])
}

func certCaller(policy, name string) map[string]any {
	return map[string]any{"policy": policy, "id": id(name), "data": nil,
		"cert": "-----BEGIN CERTIFICATE-----\n" + name + "\n-----END CERTIFICATE-----\n"}
}

type bankingEnv struct {
	app  *app.App
	s    *memState
	hist *fakeHistorical
}

func loadBanking(t testing.TB) *bankingEnv {
	t.Helper()
	b, err := app.BuildBundle("../../samples/banking")
	if err != nil {
		t.Fatal(err)
	}
	hist := newFakeHistorical()
	a, err := app.Load(b, app.Options{Consensus: fakeConsensus{2, 10}, Historical: hist, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	for _, u := range []string{"user0", "user1"} {
		s.put("public:ccf.gov.users.certs", []byte(id(u)), []byte("PEM of "+u))
	}
	s.put("public:ccf.gov.members.certs", []byte(id("member0")), []byte("PEM of member0"))
	return &bankingEnv{app: a, s: s, hist: hist}
}

func (e *bankingEnv) do(t *testing.T, method, path, query, body string, caller any) callResult {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return do(t, e.app, e.s, method, path, query, b, caller)
}

func want(t *testing.T, what string, r callResult, status int, body string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	if r.res.StatusCode != status || string(r.res.Body) != body {
		t.Fatalf("%s: got %d %q, want %d %q", what, r.res.StatusCode, r.res.Body, status, body)
	}
}

func TestBankingSample(t *testing.T) {
	e := loadBanking(t)
	member := certCaller("member_cert", "member0")
	user0, user1 := certCaller("user_cert", "user0"), certCaller("user_cert", "user1")
	u0, u1 := id("user0"), id("user1")

	want(t, "create user0", e.do(t, "PUT", "/account/"+u0+"/current_account", "", "", member), 204, "")
	want(t, "create user1", e.do(t, "PUT", "/account/"+u1+"/savings_account", "", "", member), 204, "")
	want(t, "create again", e.do(t, "PUT", "/account/"+u1+"/savings_account", "", "", member), 204, "")
	want(t, "create unknown user", e.do(t, "PUT", "/account/"+id("nobody")+"/a", "", "", member), 404, "User doesn't exist")

	want(t, "deposit", e.do(t, "POST", "/deposit/"+u0+"/current_account", "", `{"value":100}`, member), 204, "")
	// CCF's sample stores the balance as uint32 little-endian.
	if v, _ := e.s.GetKV("user_accounts:"+u0, []byte("current_account")); hex.EncodeToString(v) != "64000000" {
		t.Fatalf("stored balance %x, want 64000000", v)
	}
	for _, bad := range []string{`not json`, ``, `{"value":"abc"}`, `{"value":100.5}`, `{"value":0}`, `{"value":-100}`, `null`, `[]`} {
		r := e.do(t, "POST", "/deposit/"+u0+"/current_account", "", bad, member)
		if r.err != nil || r.res.StatusCode != 400 {
			t.Fatalf("deposit %q: %+v", bad, r)
		}
	}
	want(t, "deposit unknown user", e.do(t, "POST", "/deposit/"+id("nobody")+"/current_account", "", `{"value":1}`, member), 404, "User doesn't exist")
	want(t, "deposit unknown account", e.do(t, "POST", "/deposit/"+u0+"/nope", "", `{"value":1}`, member), 404, "Account doesn't exist")

	r := e.do(t, "POST", "/transfer/current_account", "", `{"value":40,"user_id_to":"`+u1+`","account_name_to":"savings_account"}`, user0)
	want(t, "transfer", r, 204, "")
	claim := u0 + " sent 40 to " + u1
	if d := sha256.Sum256([]byte(claim)); hex.EncodeToString(r.res.ClaimsDigest) != hex.EncodeToString(d[:]) {
		t.Fatalf("claims digest %x, want sha256(%q)", r.res.ClaimsDigest, claim)
	}
	var stored struct{ UserID, Claim string }
	v, err := e.s.GetKV("current_claim", []byte("key"))
	if err != nil || json.Unmarshal(v, &stored) != nil || stored.Claim != claim || stored.UserID != u0 {
		t.Fatalf("current_claim = %s, %v", v, err)
	}
	maps := map[string]bool{}
	for _, w := range r.res.WriteSet.Writes {
		maps[w.Map] = true
	}
	if len(r.res.WriteSet.Writes) != 3 || !maps["user_accounts:"+u0] || !maps["user_accounts:"+u1] || !maps["current_claim"] {
		t.Fatalf("transfer writes: %+v", r.res.WriteSet.Writes)
	}
	e.hist.record(2, 11, e.s)

	want(t, "balance user0", e.do(t, "GET", "/balance/current_account", "", "", user0), 200, `{"balance":60}`)
	r = e.do(t, "GET", "/balance/savings_account", "", "", user1)
	want(t, "balance user1", r, 200, `{"balance":40}`)
	if r.res.Headers["content-type"] != "application/json" || !r.res.ReadOnly || r.res.WriteSet != nil {
		t.Fatalf("balance result: %+v", r.res)
	}
	if v, _ := e.s.GetKV("user_accounts:"+u0, []byte("current_account")); hex.EncodeToString(v) != "3c000000" {
		t.Fatalf("stored balance %x, want 3c000000", v)
	}
	want(t, "balance unknown account", e.do(t, "GET", "/balance/nope", "", "", user0), 404, "Account doesn't exist")

	r = e.do(t, "POST", "/transfer/current_account", "", `{"value":61,"user_id_to":"`+u1+`","account_name_to":"savings_account"}`, user0)
	want(t, "insufficient funds", r, 400, "Balance is not enough")
	if r.res.Headers["content-type"] != "text/plain" || r.res.WriteSet != nil || r.res.ClaimsDigest != nil {
		t.Fatalf("insufficient funds result: %+v", r.res)
	}
	want(t, "transfer to unknown user", e.do(t, "POST", "/transfer/current_account", "", `{"value":1,"user_id_to":"`+id("nobody")+`","account_name_to":"x"}`, user0), 404, "User to transfer to doesn't exist")
	want(t, "transfer to unknown account", e.do(t, "POST", "/transfer/current_account", "", `{"value":1,"user_id_to":"`+u1+`","account_name_to":"x"}`, user0), 404, "Account to transfer to doesn't exist")
	want(t, "transfer bad value", e.do(t, "POST", "/transfer/current_account", "", `{"value":1.5}`, user0), 400, "Value 1.5 is not a positive integer")

	// Receipts: not ready, then ready; only the claim's owner sees it.
	want(t, "receipt bad id", e.do(t, "GET", "/receipt", "transaction_id=2-11", "", user0), 400, "Invalid transaction id: 2-11")
	r = e.do(t, "GET", "/receipt", "transaction_id=2.11", "", user0)
	if r.err != nil || r.res.StatusCode != 202 || r.res.Headers["retry-after"] != "1" {
		t.Fatalf("receipt not ready: %+v %v", r.res, r.err)
	}
	r = e.do(t, "GET", "/receipt", "transaction_id=2.11", "", user0)
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("receipt: %+v %v", r.res, r.err)
	}
	var rec struct {
		Cert           string           `json:"cert"`
		NodeID         string           `json:"node_id"`
		Signature      string           `json:"signature"`
		Proof          []map[string]any `json:"proof"`
		LeafComponents map[string]any   `json:"leaf_components"`
	}
	if err := json.Unmarshal(r.res.Body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.LeafComponents["claim"] != claim || rec.LeafComponents["commit_evidence"] != "ce:2.3:abc" ||
		rec.NodeID != "a1b2" || len(rec.Proof) != 2 || rec.Proof[0]["left"] == nil || rec.Proof[1]["right"] == nil ||
		rec.Signature != "c2lnbmF0dXJl" || !strings.Contains(rec.Cert, "node") {
		t.Fatalf("receipt body %s", r.res.Body)
	}
	want(t, "receipt of another user", e.do(t, "GET", "/receipt", "transaction_id=2.11", "", user1), 404, "No claim of yours in transaction 2.11")
}

func TestBankingReadonlyEnforced(t *testing.T) {
	e := loadBanking(t)
	// The balance endpoint is readonly: were it to write, CCF's TypeError.
	b, _ := app.BuildBundle("../../samples/banking")
	b.Modules = append(b.Modules, app.Module{Name: "endpoints/evil.js", Module: `
export function write(request) { ccf.kv["user_accounts:x"].set(ccf.strToBuf("a"), new ArrayBuffer(4)); return {}; }`})
	b.Metadata.Endpoints["/evil"] = map[string]*app.EndpointInfo{"get": {JSModule: "endpoints/evil.js", JSFunction: "write",
		AuthnPolicies: []app.AuthnPolicy{}, ForwardingRequired: "never", Mode: "readonly"}}
	a, err := app.Load(b, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, a, e.s, "GET", "/evil", "", nil, nil)
	if !errors.Is(r.err, app.ErrException) || !strings.Contains(r.err.Error(),
		"TypeError: Cannot call .set() on read-only table named user_accounts:x in read-only application execution context") {
		t.Fatalf("readonly write: %v", r.err)
	}
	if _, err := e.s.GetKV("user_accounts:x", []byte("a")); err == nil {
		t.Fatal("a readonly endpoint wrote")
	}
}
