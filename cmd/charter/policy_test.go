package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"github.com/charterlog/charter/internal/devpki"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// testIssuer is a CA and a leaf key that signs statements.
type testIssuer struct {
	alg   gocose.Algorithm
	key   crypto.Signer
	chain []*x509.Certificate
	did   string
	caFP  string // base64url SHA-256 of the CA certificate
}

func newTestIssuer(t *testing.T, alg gocose.Algorithm, cn string) *testIssuer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case gocose.AlgorithmES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case gocose.AlgorithmES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case gocose.AlgorithmES512:
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case gocose.AlgorithmEdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %v", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := devpki.New(cn, key, caKey, time.Now().Add(-time.Hour), 24*time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, did := pub.Certs, pub.Issuer
	fp := sha256.Sum256(chain[1].Raw)
	return &testIssuer{alg: alg, key: key, chain: chain, did: did, caFP: base64.RawURLEncoding.EncodeToString(fp[:])}
}

// stmt describes a statement to sign. Zero values take defaults: iss the
// issuer's did:x509, sub "pkg:test/a", an x5chain.
type stmt struct {
	iss, sub, cty string
	hashEnvelope  bool // sign SHA-256 of the payload; cty becomes label 259
	svn           *int64
	kidOnly       bool // kid instead of x5chain
}

func svn(n int64) *int64 { return &n }

// sign builds the protected header itself (cose.SignStatement has no svn)
// and signs it, so every statement is one the service could verify.
func (is *testIssuer) sign(t *testing.T, s stmt, payload []byte) []byte {
	t.Helper()
	if s.iss == "" {
		s.iss = is.did
	}
	if s.sub == "" {
		s.sub = "pkg:test/a"
	}
	cwt := map[any]any{int64(1): s.iss, int64(2): s.sub, int64(6): time.Now().Unix()}
	if s.svn != nil {
		cwt["svn"] = *s.svn
	}
	ph := map[any]any{int64(1): int64(is.alg), int64(15): cwt}
	if s.kidOnly {
		ph[int64(4)] = []byte{0xab, 0xcd}
	} else {
		ders := make([][]byte, len(is.chain))
		for i, c := range is.chain {
			ders[i] = c.Raw
		}
		ph[int64(33)] = ders
	}
	if s.hashEnvelope {
		d := sha256.Sum256(payload)
		payload = d[:]
		ph[int64(258)] = int64(-16) // SHA-256
		if s.cty != "" {
			ph[int64(259)] = s.cty
		}
	} else if s.cty != "" {
		ph[int64(3)] = s.cty
	}
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	protected, err := em.Marshal(ph)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := em.Marshal([]any{"Signature1", protected, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gocose.NewSigner(is.alg, is.key)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, tbs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(cbor.Tag{Number: 18, Content: []any{protected, map[any]any{}, payload, sig}})
	if err != nil {
		t.Fatal(err)
	}
	// Every statement must be one the service accepts up to its policy.
	st, err := cose.ParseStatement(b, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.kidOnly && strings.HasPrefix(s.iss, "did:x509:") && s.iss == is.did {
		if _, err := st.Verify(cose.VerifyOptions{}); err != nil {
			t.Fatalf("generated statement does not verify: %v", err)
		}
	}
	return b
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// examplePolicy returns an example policy of spec/policies with its
// configuration edited as an operator would: each old text must occur.
func examplePolicy(t *testing.T, name string, edits ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "spec", "policies", name))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(src, edits[i]) {
			t.Fatalf("%s has no %q to configure", name, edits[i])
		}
		src = strings.Replace(src, edits[i], edits[i+1], 1)
	}
	return src
}

// policyVerdict runs `charter policy test` and returns its verdict line
// (the last line of stdout), checking the exit status agrees with it.
func policyVerdict(t *testing.T, policySrc string, statement []byte) string {
	t.Helper()
	pol := writeTemp(t, "p.js", []byte(policySrc))
	st := writeTemp(t, "s.cose", statement)
	code, out, errOut := runCLI(t, "policy", "test", "--policy", pol, st)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	v := lines[len(lines)-1]
	if (v == "accepted") != (code == 0) || (code != 0 && code != 1) {
		t.Fatalf("verdict %q with exit %d; stderr %s", v, code, errOut)
	}
	if code == 1 && !strings.Contains(errOut, "did not accept") {
		t.Fatalf("exit 1 without saying why on stderr: %q", errOut)
	}
	return v
}

type verdictCase struct {
	name    string
	st      []byte
	verdict string // "accepted" or a prefix of the verdict line
}

func checkVerdicts(t *testing.T, src string, cases []verdictCase) {
	t.Helper()
	for _, c := range cases {
		got := policyVerdict(t, src, c.st)
		if !strings.HasPrefix(got, c.verdict) || (c.verdict == "accepted") != (got == "accepted") {
			t.Errorf("%s: verdict %q, want %q", c.name, got, c.verdict)
		}
	}
}

var spdx = []byte(`{"spdxVersion":"SPDX-2.3"}`)

func TestExamplePinDIDX509CA(t *testing.T) {
	pinned := newTestIssuer(t, gocose.AlgorithmES256, "pinned publisher")
	other := newTestIssuer(t, gocose.AlgorithmES256, "other publisher")
	src := examplePolicy(t, "pin-did-x509-ca.js", "HnwZ4lezuxq_GVcl_Sk7YWW170qAD0DZBLXilXet0jg", pinned.caFP)
	checkVerdicts(t, src, []verdictCase{
		{"pinned CA", pinned.sign(t, stmt{cty: "application/spdx+json"}, spdx), "accepted"},
		{"other CA", other.sign(t, stmt{}, spdx), "rejected: CA fingerprint " + other.caFP + " of issuer did:x509:0:sha256:" + other.caFP + "::subject:CN:other%20publisher is not pinned"},
		{"not a did:x509", pinned.sign(t, stmt{iss: "https://publisher.example"}, spdx), `rejected: issuer "https://publisher.example" is not a did:x509`},
		{"unknown did:x509 version", pinned.sign(t, stmt{iss: "did:x509:1:sha256:" + pinned.caFP + "::subject:CN:x"}, spdx), "rejected: issuer did:x509:1:sha256:"},
		{"pinned fingerprint, unsupported hash", pinned.sign(t, stmt{iss: "did:x509:0:md5:" + pinned.caFP + "::subject:CN:x"}, spdx), "rejected: issuer did:x509:0:md5:"},
	})
}

func TestExampleContentTypes(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "sbom publisher")
	src := examplePolicy(t, "content-types.js")
	checkVerdicts(t, src, []verdictCase{
		{"SPDX", is.sign(t, stmt{cty: "application/spdx+json"}, spdx), "accepted"},
		{"CycloneDX with a parameter", is.sign(t, stmt{cty: "Application/vnd.cyclonedx+json; charset=utf-8"}, spdx), "accepted"},
		{"hash envelope of SPDX", is.sign(t, stmt{cty: "application/spdx+json", hashEnvelope: true}, spdx), "accepted"},
		{"hash envelope of CycloneDX", is.sign(t, stmt{cty: "application/vnd.cyclonedx+json", hashEnvelope: true}, spdx), "accepted"},
		{"legacy hash-v SPDX", is.sign(t, stmt{cty: "application/spdx+json+cose-hash-v"}, spdx), "accepted"},
		{"plain JSON", is.sign(t, stmt{cty: "application/json"}, spdx), "rejected: content type application/json is not one of application/spdx+json, application/vnd.cyclonedx+json"},
		{"no content type", is.sign(t, stmt{}, spdx), "rejected: no content type (label 3)"},
		{"hash envelope of JSON", is.sign(t, stmt{cty: "application/json", hashEnvelope: true}, spdx), "rejected: preimage content type application/json is not one of"},
		{"hash envelope without 259", is.sign(t, stmt{hashEnvelope: true}, spdx), "rejected: hash envelope without a preimage content type"},
		{"SPDX as a suffix only", is.sign(t, stmt{cty: "text/application/spdx+json"}, spdx), "rejected: content type text/application/spdx+json"},
	})
}

func TestExampleMinSVN(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES384, "versioned publisher")
	src := examplePolicy(t, "min-svn.js", "const MIN_SVN = 1;", "const MIN_SVN = 3;")
	checkVerdicts(t, src, []verdictCase{
		{"svn at the minimum", is.sign(t, stmt{svn: svn(3)}, spdx), "accepted"},
		{"svn above", is.sign(t, stmt{svn: svn(1 << 40)}, spdx), "accepted"},
		{"svn below", is.sign(t, stmt{svn: svn(2)}, spdx), "rejected: svn 2 is below the minimum 3"},
		{"svn 0", is.sign(t, stmt{svn: svn(0)}, spdx), "rejected: svn 0 is below the minimum 3"},
		{"no svn", is.sign(t, stmt{}, spdx), "rejected: no svn in the CWT claims"},
	})
}

func TestExampleSubjectPrefix(t *testing.T) {
	acme := newTestIssuer(t, gocose.AlgorithmES256, "acme")
	beta := newTestIssuer(t, gocose.AlgorithmEdDSA, "beta")
	cfg := `  "` + acme.did + `": "pkg:acme/",
  "` + beta.did + `": "pkg:beta/",`
	src := examplePolicy(t, "subject-prefix.js",
		`  "did:x509:0:sha256:HnwZ4lezuxq_GVcl_Sk7YWW170qAD0DZBLXilXet0jg::eku:1.3.6.1.4.1.311.10.3.13": "test.",`, cfg)
	checkVerdicts(t, src, []verdictCase{
		{"acme's own subject", acme.sign(t, stmt{sub: "pkg:acme/widget"}, spdx), "accepted"},
		{"beta's own subject", beta.sign(t, stmt{sub: "pkg:beta/gadget"}, spdx), "accepted"},
		{"acme claiming beta's", acme.sign(t, stmt{sub: "pkg:beta/gadget"}, spdx), "rejected: subject pkg:beta/gadget of issuer " + acme.did + " does not start with pkg:acme/"},
		{"prefix without the slash", acme.sign(t, stmt{sub: "pkg:acme"}, spdx), "rejected: subject pkg:acme of issuer"},
		{"unlisted issuer", acme.sign(t, stmt{iss: "did:x509:0:sha256:" + acme.caFP + "::subject:CN:mallory", sub: "pkg:acme/widget"}, spdx), "rejected: issuer did:x509:0:sha256:" + acme.caFP + "::subject:CN:mallory is not allowed"},
		{"issuer named like an Object property", acme.sign(t, stmt{iss: "constructor", sub: "function"}, spdx), "rejected: issuer constructor is not allowed"},
	})
}

func TestExampleRealisticFiveChecks(t *testing.T) {
	es256 := newTestIssuer(t, gocose.AlgorithmES256, "es256")
	es384 := newTestIssuer(t, gocose.AlgorithmES384, "es384")
	ed := newTestIssuer(t, gocose.AlgorithmEdDSA, "ed")
	es512 := newTestIssuer(t, gocose.AlgorithmES512, "es512")
	src := examplePolicy(t, "realistic-five-checks.js")
	spdxCT := stmt{cty: "application/spdx+json"}
	with := func(f func(*stmt)) stmt { s := spdxCT; f(&s); return s }
	checkVerdicts(t, src, []verdictCase{
		{"ES256 SPDX", es256.sign(t, spdxCT, spdx), "accepted"},
		{"ES384 in-toto", es384.sign(t, stmt{cty: "application/vnd.in-toto+json"}, spdx), "accepted"},
		{"EdDSA hash envelope of CycloneDX", ed.sign(t, stmt{cty: "application/vnd.cyclonedx+json", hashEnvelope: true}, spdx), "accepted"},
		{"256 two-byte characters", es256.sign(t, with(func(s *stmt) { s.sub = strings.Repeat("é", 256) }), spdx), "accepted"},
		{"ES512", es512.sign(t, spdxCT, spdx), "rejected: algorithm ES512 is not one of ES256, ES384, EdDSA"},
		{"kid only", es256.sign(t, with(func(s *stmt) { s.kidOnly = true }), spdx), "rejected: no x5chain"},
		{"issuer not did:x509", es256.sign(t, with(func(s *stmt) { s.iss = "did:web:example.com" }), spdx), "rejected: issuer did:web:example.com is not a did:x509"},
		{"257 characters", es256.sign(t, with(func(s *stmt) { s.sub = strings.Repeat("a", 257) }), spdx), "rejected: the subject is longer than 256 characters"},
		{"257 astral characters", es256.sign(t, with(func(s *stmt) { s.sub = strings.Repeat("😀", 257) }), spdx), "rejected: the subject is longer than 256 characters"},
		{"no content type", es256.sign(t, stmt{}, spdx), "rejected: no content type"},
		{"content type not allowed", es256.sign(t, stmt{cty: "text/plain"}, spdx), "rejected: content type text/plain is not allowed"},
		{"hash envelope of a type not allowed", es256.sign(t, stmt{cty: "text/plain", hashEnvelope: true}, spdx), "rejected: content type text/plain is not allowed"},
	})
}

// interopPayload returns a statement of the CCF SCITT ledger's test data
// (shared by the worktrees), or skips.
func interopPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "interop", "scitt-ccf-ledger", "test", "payloads", name))
	if os.IsNotExist(err) {
		t.Skipf("interop test data absent: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The example pins the CA of the CCF ledger's test statements as shipped;
// pinned to another CA it rejects them, naming theirs.
func TestExamplePinInterop(t *testing.T) {
	const theirs = "HnwZ4lezuxq_GVcl_Sk7YWW170qAD0DZBLXilXet0jg"
	pinned := examplePolicy(t, "pin-did-x509-ca.js")
	another := examplePolicy(t, "pin-did-x509-ca.js", theirs, "_ZI-nfqGZ-fxTeeCyC31xeKEs30u3esA8mjXEgsDfTU")
	for _, name := range []string{"manifest.spdx.json.sha384.digest.cose", "cts-hashv-cwtclaims-b64url.cose"} {
		st := interopPayload(t, name)
		if v := policyVerdict(t, pinned, st); v != "accepted" {
			t.Errorf("%s under its CA's pin: %q", name, v)
		}
		want := "rejected: CA fingerprint " + theirs + " of issuer did:x509:0:sha256:" + theirs + "::eku:1.3.6.1.4.1.311.10.3.13 is not pinned"
		if v := policyVerdict(t, another, st); v != want {
			t.Errorf("%s under another pin: %q, want %q", name, v, want)
		}
	}
	// The other shipped examples, unedited, on the same statements: the
	// SPDX manifest (svn 2, sub test.submission-1, legacy hash-v SPDX type)
	// passes them; cts-hashv (svn 0, sub "Test", application/json) does not.
	manifest := interopPayload(t, "manifest.spdx.json.sha384.digest.cose")
	hashv := interopPayload(t, "cts-hashv-cwtclaims-b64url.cose")
	for _, c := range []struct {
		policy       string
		manifest, hv string
	}{
		{"min-svn.js", "accepted", "rejected: svn 0 is below the minimum 1"},
		{"subject-prefix.js", "accepted", "rejected: subject Test of issuer"},
		{"content-types.js", "accepted", "rejected: content type application/json+cose-hash-v is not one of"},
		{"realistic-five-checks.js", "rejected: algorithm PS384", "rejected: algorithm PS256"},
	} {
		src := examplePolicy(t, c.policy)
		if v := policyVerdict(t, src, manifest); !strings.HasPrefix(v, c.manifest) {
			t.Errorf("%s on the SPDX manifest: %q, want %q", c.policy, v, c.manifest)
		}
		if v := policyVerdict(t, src, hashv); !strings.HasPrefix(v, c.hv) {
			t.Errorf("%s on cts-hashv: %q, want %q", c.policy, v, c.hv)
		}
	}
}

// policy test shows the inputs exactly as a policy receives them.
func TestPolicyTestShowsInputs(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "show")
	st := is.sign(t, stmt{cty: "application/spdx+json", svn: svn(7), hashEnvelope: true, sub: "pkg:show/1"}, spdx)
	pol := writeTemp(t, "p.js", []byte(`export function apply() { return true; }`))
	code, out, errOut := runCLI(t, "policy", "test", "--policy", pol, writeTemp(t, "s.cose", st))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	js, ok := strings.CutPrefix(strings.TrimSuffix(strings.TrimSpace(out), "accepted"), "inputs: ")
	if !ok {
		t.Fatalf("output %q", out)
	}
	var in struct {
		Phdr    map[string]any `json:"phdr"`
		Uhdr    map[string]any `json:"uhdr"`
		Payload *int           `json:"payload"`
	}
	if err := json.Unmarshal([]byte(js), &in); err != nil {
		t.Fatalf("inputs are not JSON: %v\n%s", err, js)
	}
	cwt, _ := in.Phdr["cwt"].(map[string]any)
	chain, _ := in.Phdr["x5chain"].([]any)
	if in.Phdr["alg"] != "ES256" || in.Phdr["payload_hash_alg"] != "SHA-256" || in.Phdr["preimage_content_type"] != "application/spdx+json" ||
		in.Phdr["cty"] != nil || cwt["iss"] != is.did || cwt["sub"] != "pkg:show/1" || cwt["svn"] != float64(7) ||
		len(chain) != 2 || !strings.HasPrefix(chain[0].(string), "-----BEGIN CERTIFICATE-----\n") {
		t.Errorf("phdr = %v", in.Phdr)
	}
	if in.Uhdr == nil || len(in.Uhdr) != 0 || in.Payload == nil || *in.Payload != sha256.Size {
		t.Errorf("uhdr %v, payload %v; want {} and the 32-byte digest", in.Uhdr, in.Payload)
	}
}

func TestPolicyTestErrors(t *testing.T) {
	is := newTestIssuer(t, gocose.AlgorithmES256, "errors")
	st := is.sign(t, stmt{}, spdx)
	for _, c := range []struct {
		name, src, verdict string
	}{
		{"throws", `export function apply() { throw new Error("boom"); }`, "policy error: "},
		{"returns a number", `export function apply() { return 42; }`, "policy error: "},
		{"returns false", `export function apply() { return false; }`, "policy error: "},
		{"runs away", `export function apply() { for (;;) {} }`, "policy error: "},
		{"syntax error", `export function apply( {`, "policy error: "},
		{"no apply", `export function check() { return true; }`, "policy error: "},
		{"reads the clock", `export function apply() { return String(Date.now()); }`, "policy error: "},
	} {
		v := policyVerdict(t, c.src, st)
		if !strings.HasPrefix(v, c.verdict) {
			t.Errorf("%s: %q, want %q…", c.name, v, c.verdict)
		}
	}
	if v := policyVerdict(t, `export function apply() { return "no thanks"; }`, st); v != "rejected: no thanks" {
		t.Errorf("a string reason: %q", v)
	}

	pol := writeTemp(t, "p.js", []byte(`export function apply() { return true; }`))
	if code, _, _ := runCLI(t, "policy", "test", writeTemp(t, "s.cose", st)); code != 2 {
		t.Errorf("without --policy: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "policy", "test", "--policy", pol); code != 2 {
		t.Errorf("without a statement: exit %d, want 2", code)
	}
	code, out, errOut := runCLI(t, "policy", "test", "--policy", pol, writeTemp(t, "s.cose", []byte("not cose")))
	if code != 1 || out != "" || !strings.Contains(errOut, "is not a signed statement") {
		t.Errorf("a non-statement: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Flags may follow the statement.
	if code, out, _ := runCLI(t, "policy", "test", writeTemp(t, "s.cose", st), "--policy", pol); code != 0 || !strings.HasSuffix(out, "accepted\n") {
		t.Errorf("--policy after the statement: exit %d, %q", code, out)
	}
}
