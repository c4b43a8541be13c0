package gov_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/httpapi"
	"github.com/go-chi/chi/v5"
)

// scurl is a request signed as CCF ≤ 3's scurl.sh signs it, from the
// script's facts: Digest SHA-256 of the body, the signing string
// "(request-target): post <path>\ndigest: …\ncontent-length: N", ECDSA
// over SHA-384 of it (whatever the curve), DER, base64; keyId the hex
// SHA-256 of the certificate's PEM file. mutate may change the parts
// before the header is assembled.
type scurl struct {
	key      *ecdsa.PrivateKey
	certFile string // the PEM file's bytes, as the script hashes them
	method   string
	target   string
	body     []byte

	digest, length, keyID, algorithm, headers string
	signingString                             string
	signWith                                  *ecdsa.PrivateKey
	omitDigest                                bool
}

func newScurl(m *testMember, target string, body []byte) *scurl {
	sum := sha256.Sum256(body)
	id := sha256.Sum256([]byte(m.pem))
	s := &scurl{key: m.key, certFile: m.pem, method: "POST", target: target, body: body,
		digest: "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:]), length: fmt.Sprint(len(body)),
		keyID: hex.EncodeToString(id[:]), algorithm: "hs2019", headers: "(request-target) digest content-length"}
	return s
}

func (s *scurl) authorization() string {
	ss := s.signingString
	if ss == "" {
		ss = "(request-target): " + strings.ToLower(s.method) + " " + s.target + "\ndigest: " + s.digest + "\ncontent-length: " + s.length
	}
	k := s.key
	if s.signWith != nil {
		k = s.signWith
	}
	d := sha512.Sum384([]byte(ss))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`Signature keyId="%s",algorithm="%s",headers="%s",signature="%s"`, s.keyID, s.algorithm, s.headers, base64.StdEncoding.EncodeToString(sig))
}

func (s *scurl) send(t *testing.T, c *http.Client, base string) reply {
	t.Helper()
	req, err := http.NewRequest(s.method, base+s.target, bytes.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if !s.omitDigest {
		req.Header.Set("Digest", s.digest)
	}
	req.Header.Set("Authorization", s.authorization())
	req.Header.Set("Content-Type", "application/json")
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func ccfCode(t *testing.T, r reply) string {
	t.Helper()
	var ce httpapi.CCFError
	if err := json.Unmarshal(r.body, &ce); err != nil || ce.Error.Message == "" {
		t.Fatalf("answer %d %q is not CCF's JSON error", r.status, r.body)
	}
	return ce.Error.Code
}

// The classic walkthrough with scurl.sh's HTTP signatures: activation,
// proposal, ballots, withdrawal; each signed request is taken once.
func TestHTTPSignedClassicRoutes(t *testing.T) {
	e := newEnv(t, 2)
	srv := e.serve()
	a, b := e.m[0], e.m[1]
	for _, m := range e.m {
		upd := newScurl(m, "/gov/ack/update_state_digest", nil).send(t, nil, srv.URL)
		var sd map[string]string
		upd.json(t, &sd)
		if upd.status != 200 || len(sd["state_digest"]) != 64 {
			t.Fatalf("update_state_digest: %d %s", upd.status, upd.body)
		}
		ack := newScurl(m, "/gov/ack", upd.body).send(t, nil, srv.URL)
		if ack.status != http.StatusNoContent || ack.header.Get("x-ms-ccf-transaction-id") == "" {
			t.Fatalf("ack: %d %s", ack.status, ack.body)
		}
		// The same signed ack again: refused, though its digest is still
		// the one issued.
		if again := newScurl(m, "/gov/ack", upd.body).send(t, nil, srv.URL); again.status != http.StatusConflict || ccfCode(t, again) != "ProposalReplay" {
			t.Fatalf("replayed ack: %d %s", again.status, again.body)
		}
	}
	// The ledger keeps the signed request, verifiable by anyone.
	var claims struct {
		HTTPSignature struct {
			MemberID      string `json:"member_id"`
			SigningString string `json:"signing_string"`
			Signature     string `json:"signature"`
		} `json:"http_signature"`
	}
	hist, _ := base64.StdEncoding.DecodeString(e.kv(govwire.MapHistory, a.id))
	if err := json.Unmarshal(hist, &claims); err != nil || claims.HTTPSignature.MemberID != a.id ||
		!strings.HasPrefix(claims.HTTPSignature.SigningString, "(request-target): post /gov/ack\ndigest: SHA-256=") {
		t.Fatalf("history of %s: %s", a.id, hist)
	}
	sig, _ := base64.StdEncoding.DecodeString(claims.HTTPSignature.Signature)
	d := sha512.Sum384([]byte(claims.HTTPSignature.SigningString))
	if !ecdsa.VerifyASN1(&a.key.PublicKey, d[:], sig) {
		t.Fatal("the recorded HTTP signature does not verify")
	}

	prop, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{configAction(2048)}})
	p := newScurl(a, "/gov/proposals", prop).send(t, nil, srv.URL)
	var sum httpapi.ProposalSummary
	p.json(t, &sum)
	if p.status != 200 || sum.ProposerID != a.id || sum.State != govwire.StateOpen {
		t.Fatalf("proposal: %d %s", p.status, p.body)
	}
	if again := newScurl(a, "/gov/proposals", prop).send(t, nil, srv.URL); again.status != http.StatusConflict || ccfCode(t, again) != "ProposalReplay" {
		t.Fatalf("replayed proposal: %d %s", again.status, again.body)
	}
	ballot := []byte(`{"ballot": "export function vote (proposal, proposerId) { return true }"}`)
	for i, m := range []*testMember{a, b} {
		v := newScurl(m, "/gov/proposals/"+sum.ProposalID+"/ballots", ballot).send(t, nil, srv.URL)
		var vs httpapi.ProposalSummary
		v.json(t, &vs)
		if v.status != 200 || vs.BallotCount != i+1 && vs.State != govwire.StateAccepted {
			t.Fatalf("ballot %d: %d %s", i, v.status, v.body)
		}
		if i == 1 && vs.State != govwire.StateAccepted {
			t.Fatalf("after both ballots: %s", v.body)
		}
	}
	if !strings.Contains(e.kv(govwire.MapSCITTConfig, "configuration"), `"max_statement_bytes":2048`) {
		t.Fatal("the accepted proposal was not applied")
	}

	// A withdrawal, by its proposer only.
	prop2, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{configAction(4096)}})
	p = newScurl(a, "/gov/proposals", prop2).send(t, nil, srv.URL)
	p.json(t, &sum)
	if w := newScurl(b, "/gov/proposals/"+sum.ProposalID+"/withdraw", nil).send(t, nil, srv.URL); w.status != http.StatusForbidden || ccfCode(t, w) != "NotProposer" {
		t.Fatalf("withdrawal by another member: %d %s", w.status, w.body)
	}
	w := newScurl(a, "/gov/proposals/"+sum.ProposalID+"/withdraw", nil).send(t, nil, srv.URL)
	w.json(t, &sum)
	if w.status != 200 || sum.State != govwire.StateWithdrawn {
		t.Fatalf("withdrawal: %d %s", w.status, w.body)
	}
}

// Each defect of an HTTP signature has its own CCF error, and writes
// nothing.
func TestHTTPSignedErrors(t *testing.T) {
	e := newEnv(t, 1)
	srv := e.serve()
	m := e.m[0]
	stranger := newTestMember(t, "stranger")
	body := []byte(`{"state_digest": "` + strings.Repeat("0", 64) + `"}`)
	for _, c := range []struct {
		name   string
		mutate func(s *scurl)
		status int
		code   string
	}{
		{"wrong digest", func(s *scurl) {
			d := sha256.Sum256([]byte("another body"))
			s.digest = "SHA-256=" + base64.StdEncoding.EncodeToString(d[:])
		}, 400, "DigestMismatch"},
		{"digest not SHA-256", func(s *scurl) { s.digest = "MD5=" + base64.StdEncoding.EncodeToString(make([]byte, 16)) }, 400, "InvalidHTTPSignature"},
		{"no Digest header", func(s *scurl) { s.omitDigest = true }, 400, "MissingSignedHeader"},
		{"digest not signed", func(s *scurl) {
			s.headers = "(request-target) content-length"
			s.signingString = "(request-target): post /gov/ack\ncontent-length: " + s.length
		}, 400, "MissingSignedHeader"},
		{"unknown keyId, stranger's key", func(s *scurl) { s.keyID = strings.Repeat("ab", 32); s.signWith = stranger.key }, 401, "UnknownKeyId"},
		{"member's keyId, stranger's key", func(s *scurl) { s.signWith = stranger.key }, 401, "InvalidSignature"},
		{"signature over another target", func(s *scurl) {
			s.signingString = "(request-target): post /gov/proposals\ndigest: " + s.digest + "\ncontent-length: " + s.length
		}, 401, "InvalidSignature"},
		{"rsa-sha256", func(s *scurl) { s.algorithm = "rsa-sha256" }, 400, "InvalidHTTPSignature"},
		{"oversized keyId", func(s *scurl) { s.keyID = strings.Repeat("a", 4096) }, 400, "InvalidHTTPSignature"},
		{"pseudo-header (created)", func(s *scurl) { s.headers = "(request-target) (created) digest content-length" }, 400, "InvalidHTTPSignature"},
	} {
		s := newScurl(m, "/gov/ack", body)
		c.mutate(s)
		r := s.send(t, nil, srv.URL)
		if r.status != c.status || ccfCode(t, r) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	// A COSE body under an HTTP signature.
	req, _ := http.NewRequest("POST", srv.URL+"/gov/ack", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/cose")
	req.Header.Set("Authorization", newScurl(m, "/gov/ack", body).authorization())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("COSE content type under an HTTP signature: %d", resp.StatusCode)
	}
	for _, mp := range []string{govwire.MapHTTPSignedRequests, govwire.MapMemberAcks, govwire.MapHistory} {
		n := 0
		_ = e.l.ScanKV(mp, func(_, _ []byte) error { n++; return nil })
		if n != 0 {
			t.Errorf("refused requests wrote %d entries to %s", n, mp)
		}
	}
}

// keyId is matched against the PEM forms of the member's certificate, its
// member id, and last against every member's key.
func TestHTTPSignedKeyID(t *testing.T) {
	e := newEnv(t, 2)
	srv := e.serve()
	m := e.m[1]
	for i, keyID := range []func() string{
		func() string {
			s := sha256.Sum256([]byte(strings.TrimSuffix(m.pem, "\n")))
			return hex.EncodeToString(s[:])
		},
		func() string {
			s := sha256.Sum256([]byte(strings.ReplaceAll(m.pem, "\n", "\r\n")))
			return hex.EncodeToString(s[:])
		},
		func() string { return m.id },
		func() string { return "not-a-digest-at-all" },
	} {
		s := newScurl(m, "/gov/ack/update_state_digest", []byte(fmt.Sprintf(`{"n": %d}`, i)))
		s.body = nil
		s.length = "0"
		sum := sha256.Sum256(nil)
		s.digest = "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
		s.keyID = keyID()
		// Vary the target so that no two requests share a signing string.
		s.target = "/gov/ack/update_state_digest?try=" + fmt.Sprint(i)
		r := s.send(t, nil, srv.URL)
		if r.status != 200 {
			t.Fatalf("keyId form %d: %d %s", i, r.status, r.body)
		}
		var ack govwire.AckRecord
		if err := json.Unmarshal([]byte(e.kv(govwire.MapMemberAcks, m.id)), &ack); err != nil || ack.StateDigest == "" {
			t.Fatalf("keyId form %d: no digest issued to the signing member: %v", i, err)
		}
		if e.kv(govwire.MapMemberAcks, e.m[0].id) != "" {
			t.Fatalf("keyId form %d: a digest was issued to the other member", i)
		}
	}
}

// update_state_digest with a member's TLS client certificate and no
// signature; anyone else is refused.
func TestUpdateStateDigestClientCert(t *testing.T) {
	e := newEnv(t, 1)
	r := chi.NewRouter()
	httpapi.GovRoutes(r, e.s, nil)
	srv := httptest.NewUnstartedServer(r)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := func(m *testMember) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if m != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{m.cert.Raw}, PrivateKey: m.key}}
		}
		return &http.Client{Transport: tr}
	}
	post := func(c *http.Client, body string) reply {
		resp, err := c.Post(srv.URL+"/gov/ack/update_state_digest", "", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{resp.StatusCode, resp.Header, b}
	}
	if r := post(client(nil), ""); r.status != 401 || ccfCode(t, r) != "UnknownMember" {
		t.Fatalf("no certificate: %d %s", r.status, r.body)
	}
	if r := post(client(newTestMember(t, "stranger")), ""); r.status != 401 || ccfCode(t, r) != "UnknownMember" {
		t.Fatalf("a stranger's certificate: %d %s", r.status, r.body)
	}
	if r := post(client(e.m[0]), `{"x": 1}`); r.status != 400 || ccfCode(t, r) != "InvalidGovernanceRequest" {
		t.Fatalf("a body without a signature: %d %s", r.status, r.body)
	}
	if e.kv(govwire.MapMemberAcks, e.m[0].id) != "" {
		t.Fatal("a refused request issued a digest")
	}
	up := post(client(e.m[0]), "")
	var sd map[string]string
	up.json(t, &sd)
	if up.status != 200 || len(sd["state_digest"]) != 64 || up.header.Get("x-ms-ccf-transaction-id") == "" {
		t.Fatalf("member's certificate: %d %s", up.status, up.body)
	}
	// Only update_state_digest takes a certificate alone.
	resp, err := client(e.m[0]).Post(srv.URL+"/gov/ack", "", strings.NewReader(string(up.body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("ack with a certificate alone: %d", resp.StatusCode)
	}
}

// The ledger's claims of HTTP-signed and certificate-authenticated
// requests say who made them; other claims are not mistaken for them.
func TestDescribeClaims(t *testing.T) {
	e := newEnv(t, 1)
	srv := e.serve()
	m := e.m[0]
	if r := newScurl(m, "/gov/ack/update_state_digest", nil).send(t, nil, srv.URL); r.status != 200 {
		t.Fatalf("update_state_digest: %d %s", r.status, r.body)
	}
	hist, _ := base64.StdEncoding.DecodeString(e.kv(govwire.MapHistory, m.id))
	if typ, id, how, ok := govwire.DescribeClaims(hist); !ok || typ != govwire.MsgStateDigest || id != m.id || how != "HTTP signature" {
		t.Fatalf("HTTP-signed claims: %v %q %q %q", ok, typ, id, how)
	}
	if typ, id, how, ok := govwire.DescribeClaims([]byte(`{"type":"state_digest","tls_client_certificate":{"member_id":"ab"}}`)); !ok || typ != govwire.MsgStateDigest || id != "ab" || how != "TLS client certificate" {
		t.Fatalf("certificate claims: %v %q %q %q", ok, typ, id, how)
	}
	for _, c := range []string{"", "genesis", `{"type":"ack"}`, `{"http_signature":{}}`, "{"} {
		if _, _, _, ok := govwire.DescribeClaims([]byte(c)); ok {
			t.Errorf("claims %q described as a member's request", c)
		}
	}
}

// Beyond 16 members no key is tried: a keyId that names nobody is refused
// without 17 verifications, while one that names a member still works.
func TestHTTPSignedTrialBound(t *testing.T) {
	e := newEnv(t, 17)
	srv := e.serve()
	m := e.m[16]
	s := newScurl(m, "/gov/ack/update_state_digest", nil)
	s.keyID = strings.Repeat("cd", 32)
	if r := s.send(t, nil, srv.URL); r.status != 401 || ccfCode(t, r) != "UnknownKeyId" || !strings.Contains(string(r.body), "too many to try") {
		t.Fatalf("unmatched keyId among 17 members: %d %s", r.status, r.body)
	}
	if r := newScurl(m, "/gov/ack/update_state_digest", nil).send(t, nil, srv.URL); r.status != 200 {
		t.Fatalf("matching keyId among 17 members: %d %s", r.status, r.body)
	}
}
