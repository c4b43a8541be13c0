package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/fxamacker/cbor/v2"
)

// writeMember writes a member0 identity as a started network does and
// returns its certificate.
func writeMember(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "member0"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "member0_privk.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "member0_cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// fakeGov is the part of governance setPolicy talks to: it checks every
// request's signature against member0's certificate and answers as a
// one-member network would, or with refuse as the proposal's problem.
type fakeGov struct {
	t       *testing.T
	cert    *x509.Certificate
	refuse  string
	mu      sync.Mutex
	policy  string
	ballots int
}

func (f *fakeGov) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := govwire.ParseRequest(body)
	if err == nil {
		err = req.Verify(f.cert)
	}
	if err != nil || r.Header.Get("Content-Type") != "application/cose" {
		f.t.Errorf("%s %s: %v (Content-Type %q)", r.Method, r.URL.Path, err, r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	const pid = "1f6e0e2c4a5b0c9d8e7f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"
	switch {
	case r.URL.Path == "/gov/members/proposals:create" && req.Type == govwire.MsgProposal:
		if f.refuse != "" {
			b, _ := cbor.Marshal(map[int]string{-1: "ProposalInvalid", -2: f.refuse})
			w.Header().Set("Content-Type", "application/concise-problem-details+cbor")
			w.WriteHeader(http.StatusBadRequest)
			w.Write(b)
			return
		}
		p, err := req.Proposal()
		if err != nil || len(p.Actions) != 1 || p.Actions[0].Name != "set_registration_policy" {
			f.t.Errorf("proposal %s: %v", req.Payload, err)
		} else {
			var a map[string]string
			if err := json.Unmarshal(p.Actions[0].Args, &a); err != nil || len(a) != 1 {
				f.t.Errorf("args %s: %v", p.Actions[0].Args, err)
			}
			f.policy = a["policy"]
		}
		json.NewEncoder(w).Encode(map[string]any{"proposalId": pid, "proposalState": "Open"})
	case r.URL.Path == "/gov/members/proposals/"+pid+"/ballots/"+govwire.MemberIDOf(f.cert)+":submit" && req.Type == govwire.MsgBallot && req.ProposalID == pid:
		f.ballots++
		json.NewEncoder(w).Encode(map[string]any{"proposalId": pid, "proposalState": "Accepted"})
	default:
		f.t.Errorf("unexpected %s %s (%s)", r.Method, r.URL.Path, req.Type)
		w.WriteHeader(http.StatusNotFound)
	}
}

// setPolicy proposes the policy as member0, signed, votes for it, and
// returns its version; a refused proposal is an error naming the problem.
func TestSetPolicyThroughGovernance(t *testing.T) {
	dir := t.TempDir()
	f := &fakeGov{t: t, cert: writeMember(t, dir)}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	m, err := loadMember(dir)
	if err != nil {
		t.Fatal(err)
	}
	const src = "export function apply() { return true; }\n"
	v, err := setPolicy(context.Background(), srv.Client(), base, m, src)
	if err != nil {
		t.Fatal(err)
	}
	if v != sha256.Sum256([]byte(src)) || f.policy != src || f.ballots != 1 {
		t.Errorf("version %x, governance saw policy %q and %d ballots", v, f.policy, f.ballots)
	}
	f.refuse = "action 0 (set_registration_policy): SyntaxError"
	if _, err := setPolicy(context.Background(), srv.Client(), base, m, "export function apply( {"); err == nil || !strings.Contains(err.Error(), "ProposalInvalid") {
		t.Errorf("refused proposal: %v, want the ProposalInvalid problem", err)
	}
	if _, err := loadMember(t.TempDir()); err == nil {
		t.Error("loadMember of a directory without member0 succeeded")
	}
}

func TestPolicyOptions(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "p.js")
	if err := os.WriteFile(pol, []byte("export function apply() { return true; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.js")
	if err := os.WriteFile(empty, []byte(" \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--charterd", "x", "--compare-policy"},
		{"--charterd", "x", "--policy", pol, "--compare-policy", "--compare"},
		{"--url", "https://127.0.0.1:1", "--cacert", "c", "--policy", pol},
		{"--charterd", "x", "--policy", filepath.Join(t.TempDir(), "missing.js")},
		{"--charterd", "x", "--policy", empty},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
	o, err := parseOptions([]string{"--charterd", "x", "--policy", pol, "--compare-policy"}, io.Discard)
	if err != nil || !o.comparePol || o.nodes != 1 || !strings.Contains(o.policySrc, "apply") || o.contentType != "application/octet-stream" {
		t.Errorf("--policy --compare-policy: %+v, %v", o, err)
	}
}

// A PolicyError says which limit the policy hit only in its detail: the
// report shows the first detail of each failure kind.
func TestFailureExampleDetail(t *testing.T) {
	var r, other result
	r.add(outcome{failure: "400 PolicyError"})
	r.add(outcome{failure: "400 PolicyError", detail: "policy: time limit exceeded"})
	r.add(outcome{failure: "400 PolicyError", detail: "policy: memory limit exceeded"})
	other.add(outcome{failure: "503 ServiceUnavailable", detail: "not the leader"})
	r.merge(&other)
	var out strings.Builder
	report(&out, []row{{name: "1 closed", r: r}}, yardstick{median: 1000, slices: 1}, 0)
	for _, want := range []string{"400 PolicyError                          3\n    e.g. policy: time limit exceeded\n", "e.g. not the leader\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "memory limit") {
		t.Errorf("report shows more than the first detail:\n%s", out.String())
	}
}
