package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	gocose "github.com/veraison/go-cose"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Governance deploys a JS app by proposal: `charter app deploy` builds the
// banking sample's bundle from its folder, proposes set_js_app and votes;
// a bundle whose endpoint names a function its module does not export is
// refused at proposal time with that reason.
func TestAppDeployByProposal(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	member := []string{"--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")}

	broken := filepath.Join(t.TempDir(), "bundle.json")
	b, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/hello": map[string]any{"get": map[string]any{
			"js_module": "endpoints/hello.js", "js_function": "hello", "authn_policies": []string{"no_auth"},
			"forwarding_required": "never", "mode": "readonly"}}}},
		"modules": []map[string]string{{"name": "endpoints/hello.js", "module": "export function goodbye() { return {}; }"}},
	})
	if err := os.WriteFile(broken, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", broken}, member...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `does not export "hello"`) {
		t.Fatalf("deploying a bundle with a missing export: %v\n%s", err, out)
	}

	out, err = exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", filepath.Join("..", "..", "samples", "banking")}, member...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Accepted") {
		t.Fatalf("charter app deploy samples/banking: %v\n%s", err, out)
	}
}

// writeBundle writes a one-module bundle whose endpoints (GET, no_auth,
// readonly) are the functions named.
func writeBundle(t *testing.T, module string, policies []string, fns ...string) string {
	t.Helper()
	eps := map[string]any{}
	for _, f := range fns {
		eps["/"+f] = map[string]any{"get": map[string]any{
			"js_module": "endpoints/m.js", "js_function": f, "authn_policies": policies,
			"forwarding_required": "never", "mode": "readonly"}}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"endpoints": eps},
		"modules": []map[string]string{{"name": "endpoints/m.js", "module": module}}})
	p := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bundles that could never run are refused at proposal time; an app that
// throws, loops or allocates without bound is stopped within its limits
// and answers 500, and the node keeps serving.
func TestAppBadInput(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	member := []string{"--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")}
	deploy := func(bundle string) (string, error) {
		out, err := exec.Command(charterCLI, append([]string{"app", "deploy", "--bundle", bundle}, member...)...).CombinedOutput()
		return string(out), err
	}
	for name, tc := range map[string]struct {
		bundle, want string
	}{
		"syntax error":   {writeBundle(t, "export function f( { return {}; }", []string{"no_auth"}, "f"), "syntax error: endpoints/m.js:1"},
		"unknown policy": {writeBundle(t, "export function f() { return {}; }", []string{"password"}, "f"), "password"},
		"malformed":      {writeBundle(t, "export function f() { return {}; }", nil, "f"), "authn_policies"},
	} {
		if out, err := deploy(tc.bundle); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: deploy %v, want a refusal mentioning %q:\n%s", name, err, tc.want, out)
		}
	}

	mod := `
export function ok() { return { body: { ok: true } }; }
export function thrower() { throw new Error("boom"); }
export function loop() { for (;;) {} }
export function hog() { const a = []; for (;;) { a.push(new Array(1 << 16).fill(7)); } }
export function deep() { return deep() + 1; }
`
	if out, err := deploy(writeBundle(t, mod, []string{"no_auth"}, "ok", "thrower", "loop", "hog", "deep")); err != nil {
		t.Fatalf("deploying the test app: %v\n%s", err, out)
	}
	for _, f := range []string{"thrower", "loop", "hog", "deep"} {
		s, _, b := appCall(t, c, 1, nil, "GET", "/"+f, "")
		if s != 500 || !strings.Contains(b, "Exception thrown while executing.") {
			t.Errorf("GET /app/%s: %d %s, want 500 InternalError", f, s, b)
		}
		if s, _, b := appCall(t, c, 1, nil, "GET", "/ok", ""); s != 200 || !strings.Contains(b, `"ok":true`) {
			t.Fatalf("after /app/%s the node does not serve: %d %s", f, s, b)
		}
	}
	// Routing and size errors, in CCF's error shape.
	for _, tc := range []struct {
		method, path string
		body         []byte
		status       int
		code         string
	}{
		{http.MethodGet, "/app/nope", nil, 404, "ResourceNotFound"},
		{http.MethodPost, "/app/ok", nil, 405, "UnsupportedHttpVerb"},
		{http.MethodGet, "/app/ok", make([]byte, 8<<20+1), 413, "RequestBodyTooLarge"},
	} {
		r, err := c.node(1).do(tc.method, tc.path, "application/json", tc.body)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if r.Status != tc.status || !strings.Contains(string(r.Body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.Status, truncate(r.Body, 200), tc.status, tc.code)
		}
	}
	if r := c.node(1).get(t, "/node/health"); r.Status != 200 {
		t.Fatalf("health after the bad app: %d", r.Status)
	}
}

// The decentralized RBAC sample through a node, as its test.sh runs it:
// roles and user assignments by an active member, authorization checks by
// users; an unknown user or the wrong action is 400 {"allowed":false}.
func TestRBACSample(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	dir := t.TempDir()
	member0 := &govMember{Name: "member0", KeyPath: filepath.Join(c.dir, "member0_privk.pem"), CertPath: filepath.Join(c.dir, "member0_cert.pem")}
	flags := []string{"--url", c.node(1).URL, "--cacert", c.certPath, "--member-key", member0.KeyPath, "--member-cert", member0.CertPath}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(charterCLI, append(args, flags...)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Accepted") {
			t.Fatalf("charter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("app", "deploy", "--bundle", filepath.Join(repoRoot, "samples", "decentralized-rbac"))
	user0, user1 := newGovMember(t, dir, "user0", elliptic.P256()), newGovMember(t, dir, "user1", elliptic.P256())
	run("user", "add", "--cert", user0.CertPath)
	run("user", "add", "--cert", user1.CertPath)

	for _, step := range []struct {
		who          *govMember
		method, path string
		status       int
		body         string
	}{
		{member0, "PUT", "/user_admin/roles/manage_users", 200, "Ok"},
		{member0, "PUT", "/" + user0.ID + "/users/user_admin", 200, "Ok"},
		{user0, "GET", "/" + user0.ID + "/action/manage_users", 200, `{"allowed":true}`},
		{member0, "PUT", "/contributor/roles/readwrite", 200, "Ok"},
		{member0, "PUT", "/" + user1.ID + "/users/contributor", 200, "Ok"},
		{user1, "GET", "/" + user1.ID + "/action/readwrite", 200, `{"allowed":true}`},
		{user1, "GET", "/" + strings.Repeat("4", 64) + "/action/readwrite", 400, `{"allowed":false}`},
		{user1, "GET", "/" + user1.ID + "/action/reader", 400, `{"allowed":false}`},
		{user0, "PUT", "/intruder/roles/everything", 401, ""},
	} {
		s, tx, b := appCall(t, c, 1, step.who, step.method, step.path, "")
		if s != step.status || (step.body != "" && b != step.body) {
			t.Fatalf("%s %s as %s: %d %q, want %d %q", step.method, step.path, step.who.Name, s, b, step.status, step.body)
		}
		// Refused before it ran (401), a request has no transaction.
		if (tx == "") != (step.status == 401) {
			t.Errorf("%s %s: x-ms-ccf-transaction-id %q", step.method, step.path, tx)
		}
	}
}

// jwtFor signs an RS256 token for the data-reconciliation test.
func jwtFor(t *testing.T, k *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(head))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// The data-reconciliation sample through a node with JWT callers:
// governance registers an issuer and its signing key, a token's holder
// ingests records and reads its report; an expired token or one signed by
// another key is 401.
func TestDataReconciliationJWT(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	flags := []string{"--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")}
	accept := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(charterCLI, append(args, flags...)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Accepted") {
			t.Fatalf("charter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	accept("app", "deploy", "--bundle", filepath.Join(repoRoot, "samples", "data-reconciliation"))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "https://demo"
	jwks := map[string]any{"keys": []map[string]any{{"kty": "RSA", "kid": "k1",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes())}}}
	jb, _ := json.Marshal(map[string]any{"issuer": issuer, "jwks": jwks})
	c.govAccept("set_jwt_issuer", `{"issuer":"`+issuer+`"}`)
	c.govAccept("set_jwt_public_signing_keys", string(jb))

	now := time.Now().Unix()
	token := jwtFor(t, key, "k1", map[string]any{"iss": issuer, "sub": "alice", "nbf": now - 60, "exp": now + 600})
	call := func(method, path, bearer, data string) (int, string) {
		args := []string{"app", "call", method, path, "--url", c.node(1).URL, "--cacert", c.certPath, "--header", "Authorization: Bearer " + bearer}
		if data != "" {
			args = append(args, "--data", data)
		}
		out, _ := exec.Command(charterCLI, args...).Output()
		s, _, b := parseAppCall(t, string(out))
		return s, b
	}
	s, b := call("POST", "/ingest", token, `[{"lei":"984500F5BD5BE5767C51","nace":"C.18.13"}]`)
	if s != 200 || !strings.Contains(b, "data has ingested successfully") {
		t.Fatalf("ingest with a JWT: %d %s", s, b)
	}
	s, b = call("GET", "/report/984500F5BD5BE5767C51", token, "")
	if s != 200 || !strings.Contains(b, `"NOT_ENOUGH_DATA"`) || !strings.Contains(b, "C.18.13") {
		t.Fatalf("report with a JWT: %d %s", s, b)
	}
	expired := jwtFor(t, key, "k1", map[string]any{"iss": issuer, "sub": "alice", "nbf": now - 600, "exp": now - 60})
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	forged := jwtFor(t, other, "k1", map[string]any{"iss": issuer, "sub": "alice", "nbf": now - 60, "exp": now + 600})
	for name, tok := range map[string]string{"expired": expired, "forged": forged} {
		if s, b := call("GET", "/report", tok, ""); s != 401 {
			t.Errorf("%s token: %d %s, want 401", name, s, b)
		}
	}
}

// user_cose_sign1 through a node: a user signs the request body as a
// COSE_Sign1 with its key and its id as kid; the handler sees the payload
// as caller.cose.content. Another key under the same kid is 401.
func TestAppUserCOSESign1(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	dir := t.TempDir()
	user := newGovMember(t, dir, "user0", elliptic.P256())
	c.govAccept("set_user", `{"cert":`+strconv.Quote(string(mustRead(t, user.CertPath)))+`}`)
	mod := `export function echo(request) {
  return { body: { id: request.caller.id, policy: request.caller.policy, content: ccf.bufToStr(request.caller.cose.content) } };
}`
	eps := map[string]any{"/echo": map[string]any{"post": map[string]any{
		"js_module": "endpoints/m.js", "js_function": "echo", "authn_policies": []string{"user_cose_sign1"},
		"forwarding_required": "always", "mode": "readonly"}}}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"endpoints": eps},
		"modules": []map[string]string{{"name": "endpoints/m.js", "module": mod}}})
	bundle := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bundle, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(charterCLI, "app", "deploy", "--bundle", bundle, "--url", c.node(1).URL, "--cacert", c.certPath,
		"--member-key", filepath.Join(c.dir, "member0_privk.pem"), "--member-cert", filepath.Join(c.dir, "member0_cert.pem")).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	sign := func(key crypto.Signer) []byte {
		msg := gocose.NewSign1Message()
		msg.Headers.Protected.SetAlgorithm(gocose.AlgorithmES256)
		msg.Headers.Protected[gocose.HeaderLabelKeyID] = []byte(user.ID)
		msg.Payload = []byte("hello from user0")
		s, err := gocose.NewSigner(gocose.AlgorithmES256, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := msg.Sign(rand.Reader, nil, s); err != nil {
			t.Fatal(err)
		}
		out, err := msg.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	r, err := c.node(1).do(http.MethodPost, "/app/echo", "application/cose", sign(user.Signer))
	if err != nil || r.Status != 200 || !strings.Contains(string(r.Body), `"content":"hello from user0"`) || !strings.Contains(string(r.Body), user.ID) {
		t.Fatalf("a COSE-signed request: %v %d %s", err, r.Status, r.Body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if r, err := c.node(1).do(http.MethodPost, "/app/echo", "application/cose", sign(other)); err != nil || r.Status != 401 {
		t.Fatalf("signed by another key: %v %d %s", err, r.Status, r.Body)
	}
}
