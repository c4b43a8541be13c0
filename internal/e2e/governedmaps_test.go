package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// governedMapsApp writes and reads whatever map a request names. /write
// lets the runtime's exception escape (the client sees CCF's 500);
// /trywrite catches it, reports it, and makes one legitimate write of its
// own; /read reads one key, readonly.
const governedMapsApp = `
function args(request) { return request.body.json(); }
export function write(request) {
  const a = args(request);
  ccf.kv[a.map].set(ccf.strToBuf(a.key), ccf.strToBuf(a.value));
  return { body: { wrote: a.map } };
}
export function trywrite(request) {
  const a = args(request);
  try {
    ccf.kv[a.map].set(ccf.strToBuf(a.key), ccf.strToBuf(a.value));
    return { body: { wrote: a.map } };
  } catch (e) {
    ccf.kv["public:e2e.refusals"].set(ccf.strToBuf(a.map), ccf.strToBuf(String(e)));
    return { body: { refused: String(e) } };
  }
}
export function read(request) {
  const a = args(request);
  try {
    const v = ccf.kv[a.map].get(ccf.strToBuf(a.key));
    return { body: { value: v === undefined ? null : ccf.bufToStr(v) } };
  } catch (e) {
    return { body: { refused: String(e) } };
  }
}
`

// TestGovernedMapsRefuseApps: a JS app deployed by governance cannot write
// a governed map (log.GovernedPrefixes): not the registration policy, not
// the trusted issuer keys, not the registration configuration, not a
// governance map, not a map the nodes maintain. Each write throws CCF's
// TypeError naming the map; nothing is written, as the governance
// endpoints and registration show: the planted policy does not run, the
// planted issuer key does not let a kid-only statement register, the
// configuration and the member list are as they were. The app still reads
// the governed public maps, and writes its own.
func TestGovernedMapsRefuseApps(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir())
	member := devMember(n)

	// The bundle, proposed and accepted by the dev node's member.
	eps := map[string]any{}
	for fn, mode := range map[string]string{"write": "readwrite", "trywrite": "readwrite", "read": "readonly"} {
		eps["/"+fn] = map[string]any{"post": map[string]any{
			"js_module": "endpoints/m.js", "js_function": fn, "authn_policies": []string{"no_auth"},
			"forwarding_required": "never", "mode": mode}}
	}
	bundle, _ := json.Marshal(map[string]any{"metadata": map[string]any{"endpoints": eps},
		"modules": []map[string]string{{"name": "endpoints/m.js", "module": governedMapsApp}}})
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(bundlePath, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(charterCLI, "app", "deploy", "--bundle", bundlePath, "--url", n.URL, "--cacert", n.CertPath,
		"--member-key", member.KeyPath, "--member-cert", member.CertPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Accepted") {
		t.Fatalf("charter app deploy: %v\n%s", err, out)
	}
	call := func(fn string, a map[string]string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(a)
		r, err := n.do(http.MethodPost, "/app/"+fn, "application/json", b)
		if err != nil {
			t.Fatalf("POST /app/%s: %v", fn, err)
		}
		var body map[string]any
		_ = json.Unmarshal(r.Body, &body)
		return r.Status, body
	}

	// Governance's state before: a policy it set, the configuration, the
	// members.
	const govPolicy = "export function apply(phdr) { return true; } // set by governance\n"
	setPolicy(t, n, govPolicy)
	config := n.get(t, "/.well-known/transparency-configuration", "Accept", "application/json")
	members := n.get(t, v7("/gov/service/members"))
	if config.Status != http.StatusOK || members.Status != http.StatusOK {
		t.Fatalf("configuration %d, members %d", config.Status, members.Status)
	}

	// The attacker's issuer key, and a kid-only statement signed with it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	kid := []byte("planted-by-an-app")
	const issuer = "https://issuer.example/governed-maps"
	kidOnly, err := cose.SignStatement(rand.Reader, key, cose.SignOptions{
		Alg: gocose.AlgorithmES256, Issuer: issuer, Subject: "pkg:e2e/governed-maps", ContentType: "text/plain", Kid: kid,
	}, []byte("kid-only "+t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	memberCert, err := os.ReadFile(member.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(memberCert)
	if blk == nil {
		t.Fatal("member0's certificate is not PEM")
	}
	memberID := sha256.Sum256(blk.Bytes)

	readOnly := "read-only table named "
	for _, tc := range []struct{ m, key, value, access string }{
		{"public:scitt.policy", "policy", "export function apply() { return \"planted by an app\"; }\n", readOnly},
		{"public:scitt.issuer_keys", issuer + "|" + hex.EncodeToString(kid), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})), readOnly},
		{"public:scitt.configuration", "configuration", `{"max_statement_bytes": 64}`, readOnly},
		{"public:ccf.gov.members.info", hex.EncodeToString(memberID[:]), `{"status":"Accepted","member_data":{"planted":true}}`, readOnly},
		{"public:charter.nodes", "1", "planted", "inaccessible table named "},
	} {
		want := "TypeError: Cannot call .set() on " + tc.access + tc.m + " in application execution context."
		a := map[string]string{"map": tc.m, "key": tc.key, "value": tc.value}
		// Uncaught: the request fails as CCF's do when JS throws.
		if s, body := call("write", a); s != http.StatusInternalServerError {
			t.Errorf("%s: write answered %d %v, want 500", tc.m, s, body)
		}
		// Caught: the app sees the runtime's error, and its own write lands.
		if s, body := call("trywrite", a); s != http.StatusOK || !strings.HasPrefix(body["refused"].(string), want) {
			t.Errorf("%s: trywrite answered %d %v, want the error %q", tc.m, s, body, want)
		}
		if s, body := call("read", map[string]string{"map": "public:e2e.refusals", "key": tc.m}); s != http.StatusOK || !strings.HasPrefix(fmtValue(body), want) {
			t.Errorf("%s: the app's own write after the refusal: %d %v", tc.m, s, body)
		}
	}

	// The app reads governed public maps, and sees governance's values.
	if s, body := call("read", map[string]string{"map": "public:scitt.policy", "key": "policy"}); s != http.StatusOK || fmtValue(body) != govPolicy {
		t.Errorf("app read of public:scitt.policy: %d %v, want governance's policy", s, body)
	}
	if s, body := call("read", map[string]string{"map": "public:scitt.issuer_keys", "key": issuer + "|" + hex.EncodeToString(kid)}); s != http.StatusOK || body["value"] != nil {
		t.Errorf("app read of the planted issuer key: %d %v, want absent", s, body)
	}
	if s, body := call("read", map[string]string{"map": "public:charter.nodes", "key": "1"}); s != http.StatusOK || !strings.Contains(fmtValue(body), "inaccessible table named public:charter.nodes") {
		t.Errorf("app read of public:charter.nodes: %d %v, want inaccessible", s, body)
	}

	// Nothing governed changed: the kid-only statement has no trusted key,
	// the planted policy does not run, configuration and members are as
	// they were.
	r, _ := postStatement(t, n, kidOnly)
	wantPolicyProblem(t, "kid-only statement after an app planted its key", r, "UnknownIssuerKey")
	n.mustRegister(t, newPublisher(t, "governed maps").unique(t))
	if after := n.get(t, "/.well-known/transparency-configuration", "Accept", "application/json"); !bytes.Equal(after.Body, config.Body) {
		t.Errorf("configuration changed:\n%s\nwas\n%s", after.Body, config.Body)
	}
	if after := n.get(t, v7("/gov/service/members")); !bytes.Equal(after.Body, members.Body) {
		t.Errorf("members changed:\n%s\nwas\n%s", after.Body, members.Body)
	}
}

// fmtValue is the string an app's /read returned: the value, or the error.
func fmtValue(body map[string]any) string {
	if s, ok := body["value"].(string); ok {
		return s
	}
	if s, ok := body["refused"].(string); ok {
		return s
	}
	return ""
}
