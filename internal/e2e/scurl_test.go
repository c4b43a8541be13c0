package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/govwire"
)

// newKeygeneratorMember writes NAME_privk.pem and NAME_cert.pem as CCF's
// keygenerator.sh does: `openssl ecparam -name secp384r1 -genkey` (an EC
// PARAMETERS block naming the curve, then the SEC 1 EC PRIVATE KEY) and
// `openssl req -new -x509 -sha384 -subj=/CN=NAME` (a self-signed
// certificate signed with ECDSA-SHA384).
func newKeygeneratorMember(t *testing.T, dir, name string) *govMember {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, Issuer: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		SignatureAlgorithm: x509.ECDSAWithSHA384,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	params, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 34}) // secp384r1
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	m := &govMember{Name: name, Signer: k, Cert: cert, ID: govwire.MemberIDOf(cert),
		KeyPath: filepath.Join(dir, name+"_privk.pem"), CertPath: filepath.Join(dir, name+"_cert.pem")}
	keyPEM := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	if err := os.WriteFile(m.KeyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.CertPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// curlAs is `curl --cacert service_cert.pem --cert CERT --key KEY`: a
// client that trusts the service certificate and presents m's certificate
// (none if m is nil).
func curlAs(t *testing.T, n *node, m *govMember) *http.Client {
	t.Helper()
	c := pinnedClient(t, n.CertPath)
	tr := c.Transport.(*http.Transport)
	if m != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{m.Cert.Raw}, PrivateKey: m.Signer, Leaf: m.Cert}}
	}
	return c
}

func send(t *testing.T, c *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// curl runs `curl URL -X METHOD [--data-binary BODY]` as m.
func curl(t *testing.T, n *node, m *govMember, method, path string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, curlAs(t, n, m), req)
}

// scurl sends what `scurl.sh URL --cacert service_cert.pem -H
// "content-type: application/json" --data-binary @FILE --signing-key KEY
// --signing-cert CERT` sends (CCF ≤ 3; --signing-cert last, see
// ../shared/seed-walkthrough.md), made from the script's facts: a POST
// with Digest: SHA-256=<base64 SHA-256 of the body>, and Authorization:
// Signature with keyId the hex SHA-256 of the certificate PEM file as
// written, algorithm hs2019, headers "(request-target) digest
// content-length", and the base64 of `openssl dgst -sha384 -sign KEY`
// (ECDSA over SHA-384, DER) of the three lines of the signing string. No
// client certificate: scurl.sh passes no --cert.
func scurl(t *testing.T, n *node, m *govMember, path string, body []byte) *response {
	t.Helper()
	certFile, err := os.ReadFile(m.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	keyID := sha256.Sum256(certFile)
	bodyDigest := sha256.Sum256(body)
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(bodyDigest[:])
	signingString := "(request-target): post " + path + "\ndigest: " + digest + "\ncontent-length: " + fmt.Sprint(len(body))
	h := sha512.Sum384([]byte(signingString))
	sig, err := ecdsa.SignASN1(rand.Reader, m.Signer.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, n.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Digest", digest)
	req.Header.Set("Authorization", fmt.Sprintf(`Signature keyId="%s",algorithm="hs2019",headers="(request-target) digest content-length",signature="%s"`,
		hex.EncodeToString(keyID[:]), base64.StdEncoding.EncodeToString(sig)))
	return send(t, curlAs(t, n, nil), req)
}

// walkthroughFiles writes the walkthrough's set_js_app.json (what the
// banking sample's build writes), vote_accept.json and set_userN.json.
func walkthroughFiles(t *testing.T, dir string, users ...*govMember) {
	t.Helper()
	bundle, err := app.BuildBundle(filepath.Join(repoRoot, "samples", "banking"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type action struct {
		Name string `json:"name"`
		Args any    `json:"args"`
	}
	type proposal struct {
		Actions []action `json:"actions"`
	}
	write("set_js_app.json", proposal{[]action{{"set_js_app", map[string]any{"bundle": bundle, "disable_bytecode_cache": false}}}})
	write("vote_accept.json", map[string]string{"ballot": "export function vote (proposal, proposerId) { return true }"})
	for i, u := range users {
		certPEM, err := os.ReadFile(u.CertPath)
		if err != nil {
			t.Fatal(err)
		}
		write(fmt.Sprintf("set_user%d.json", i), proposal{[]action{{"set_user", map[string]string{"cert": string(certPEM)}}}})
	}
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bankingTransactions runs step 5 of the walkthrough with curl and checks
// the balances end at 60 and 40.
func bankingTransactions(t *testing.T, n *node, member0, user0, user1 *govMember) {
	t.Helper()
	for _, c := range []struct {
		who          *govMember
		method, path string
		body         string
		status       int
		want         string
	}{
		{member0, "PUT", "/app/account/" + user0.ID + "/current_account", "", 204, ""},
		{member0, "PUT", "/app/account/" + user1.ID + "/savings_account", "", 204, ""},
		{member0, "POST", "/app/deposit/" + user0.ID + "/current_account", `{ "value": 100 }`, 204, ""},
		{user0, "POST", "/app/transfer/current_account", fmt.Sprintf(`{ "value": 40, "user_id_to": "%s", "account_name_to": "savings_account" }`, user1.ID), 204, ""},
		{user0, "GET", "/app/balance/current_account", "", 200, `{"balance":60}`},
		{user1, "GET", "/app/balance/savings_account", "", 200, `{"balance":40}`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := curl(t, n, c.who, c.method, c.path, body)
		if r.Status != c.status || (c.want != "" && strings.TrimSpace(string(r.Body)) != c.want) {
			t.Fatalf("%s %s as %s: %d %s, want %d %s", c.method, c.path, c.who.Name, r.Status, r.Body, c.status, c.want)
		}
	}
}

// TestManagedCCFWalkthroughScurl runs the Managed CCF banking walkthrough
// (../shared/seed-walkthrough.md) on a network of three members created
// Accepted, as the portal creates it, with CCF's tools' requests: members
// activate with curl (client certificate) and scurl.sh (HTTP signature),
// deploy the banking app and add two users by scurl.sh proposals and
// ballots, and move money with curl; balances end at 60 and 40. Callers
// who must be refused are: a stranger asking for a state digest, a
// replayed signed ballot, and an HTTP signature by a member over another
// body than the one sent.
func TestManagedCCFWalkthroughScurl(t *testing.T) {
	dir := t.TempDir()
	m := []*govMember{newKeygeneratorMember(t, dir, "member0"), newKeygeneratorMember(t, dir, "member1"), newKeygeneratorMember(t, dir, "member2")}
	user0, user1 := newKeygeneratorMember(t, dir, "user0"), newKeygeneratorMember(t, dir, "user1")
	walkthroughFiles(t, dir, user0, user1)
	n := startMembersNode(t, dir, m)

	// Step 2: each member activates itself.
	if r := curl(t, n, user0, "POST", "/gov/ack/update_state_digest", nil); r.Status != 401 || !strings.Contains(string(r.Body), `"UnknownMember"`) {
		t.Fatalf("update_state_digest with a stranger's certificate: %d %s", r.Status, r.Body)
	}
	for _, mem := range m {
		r := curl(t, n, mem, "POST", "/gov/ack/update_state_digest", nil)
		if r.Status != 200 {
			t.Fatalf("curl update_state_digest as %s: %d %s", mem.Name, r.Status, r.Body)
		}
		request := filepath.Join(dir, mem.Name+"_request.json")
		if err := os.WriteFile(request, r.Body, 0o644); err != nil {
			t.Fatal(err)
		}
		ack := scurl(t, n, mem, "/gov/ack", readFileT(t, request))
		if ack.Status != 204 {
			t.Fatalf("scurl ack as %s: %d %s", mem.Name, ack.Status, ack.Body)
		}
		// The ledger says who signed it, and how.
		tx := ack.Header.Get("x-ms-ccf-transaction-id")
		rec, rcpt, keys := filepath.Join(dir, "ack.cbor"), filepath.Join(dir, "ack.receipt"), filepath.Join(dir, "keys.cbor")
		eventually(t, 10*time.Second, "charter tx get "+tx, func() error {
			if out, err := exec.Command(charterCLI, "tx", "get", tx, "--out-record", rec, "--out-receipt", rcpt, "--url", n.URL, "--cacert", n.CertPath).CombinedOutput(); err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		if out, err := exec.Command(charterCLI, "keys", "--url", n.URL, "--cacert", n.CertPath, "--out", keys).CombinedOutput(); err != nil {
			t.Fatalf("charter keys: %v\n%s", err, out)
		}
		out, err := exec.Command(charterCLI, "tx", "verify", "--service-keys", keys, "--record", rec, "--receipt", rcpt).CombinedOutput()
		if want := "ack request by member " + mem.ID + " (HTTP signature)"; err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("charter tx verify of %s's ack: want %q: %v\n%s", mem.Name, want, err, out)
		}
	}
	members := n.get(t, "/gov/members")
	var details map[string]struct{ Status string }
	if err := json.Unmarshal(members.Body, &details); err != nil || len(details) != 3 {
		t.Fatalf("GET /gov/members: %v %s", err, members.Body)
	}
	for _, mem := range m {
		if details[mem.ID].Status != govwire.MemberActive {
			t.Fatalf("%s is %q after its ack", mem.Name, details[mem.ID].Status)
		}
	}

	// Steps 3 and 4: a proposal by member0 and ballots by member0 and
	// member1, for the app and for each user.
	voteAccept := readFileT(t, filepath.Join(dir, "vote_accept.json"))
	for _, file := range []string{"set_js_app.json", "set_user0.json", "set_user1.json"} {
		r := scurl(t, n, m[0], "/gov/proposals", readFileT(t, filepath.Join(dir, file)))
		var p struct {
			ProposalID string `json:"proposal_id"`
			State      string `json:"state"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &p) != nil || p.ProposalID == "" {
			t.Fatalf("scurl proposals %s: %d %s", file, r.Status, r.Body)
		}
		ballots := "/gov/proposals/" + p.ProposalID + "/ballots"
		for i, mem := range m[:2] {
			r = scurl(t, n, mem, ballots, voteAccept)
			if r.Status != 200 || json.Unmarshal(r.Body, &p) != nil {
				t.Fatalf("%s: ballot of %s: %d %s", file, mem.Name, r.Status, r.Body)
			}
			if want := []string{govwire.StateOpen, govwire.StateAccepted}[i]; p.State != want {
				t.Fatalf("%s: after %s's ballot the proposal is %q, want %q", file, mem.Name, p.State, want)
			}
		}
		// The same signed ballot again: refused, and nothing is written.
		if r := scurl(t, n, m[1], ballots, voteAccept); r.Status != 409 || !strings.Contains(string(r.Body), `"ProposalReplay"`) {
			t.Fatalf("%s: a replayed ballot: %d %s", file, r.Status, r.Body)
		}
	}

	// A signature over one body does not carry another: member2 signs
	// vote_accept.json and sends a rejecting ballot under it.
	open := scurl(t, n, m[0], "/gov/proposals", []byte(`{"actions": [{"name": "set_user", "args": {"cert": `+jsonString(readFileT(t, m[2].CertPath))+`}}]}`))
	var p struct {
		ProposalID string `json:"proposal_id"`
	}
	if open.Status != 200 || json.Unmarshal(open.Body, &p) != nil {
		t.Fatalf("a further proposal: %d %s", open.Status, open.Body)
	}
	forged := tamperedScurl(t, n, m[2], "/gov/proposals/"+p.ProposalID+"/ballots", voteAccept, []byte(`{"ballot": "export function vote (proposal, proposerId) { return false }"}`))
	if forged.Status != 400 || !strings.Contains(string(forged.Body), `"DigestMismatch"`) {
		t.Fatalf("a ballot under another body's signature: %d %s", forged.Status, forged.Body)
	}

	// Step 5, with curl and client certificates.
	bankingTransactions(t, n, m[0], user0, user1)
}

// tamperedScurl signs signed as scurl.sh would and sends sent instead, with
// signed's Digest and Content-Length of sent (what a proxy rewriting the
// body could do).
func tamperedScurl(t *testing.T, n *node, m *govMember, path string, signed, sent []byte) *response {
	t.Helper()
	certFile := readFileT(t, m.CertPath)
	keyID := sha256.Sum256(certFile)
	d := sha256.Sum256(signed)
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(d[:])
	ss := "(request-target): post " + path + "\ndigest: " + digest + "\ncontent-length: " + fmt.Sprint(len(sent))
	h := sha512.Sum384([]byte(ss))
	sig, err := ecdsa.SignASN1(rand.Reader, m.Signer.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL+path, bytes.NewReader(sent))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Digest", digest)
	req.Header.Set("Authorization", fmt.Sprintf(`Signature keyId="%x",algorithm="hs2019",headers="(request-target) digest content-length",signature="%s"`, keyID, base64.StdEncoding.EncodeToString(sig)))
	return send(t, curlAs(t, n, nil), req)
}

func jsonString(b []byte) string {
	s, _ := json.Marshal(string(b))
	return string(s)
}

// TestManagedCCFWalkthroughCOSE is the same walkthrough with COSE-signed
// governance: the charter CLI, given the keygenerator.sh key files as they
// are (EC PARAMETERS before the SEC 1 key), activates the members, proposes
// the walkthrough's own set_js_app.json and set_userN.json and votes with
// vote_accept.json's ballot; the transactions are the same curl calls.
func TestManagedCCFWalkthroughCOSE(t *testing.T) {
	dir := t.TempDir()
	m := []*govMember{newKeygeneratorMember(t, dir, "member0"), newKeygeneratorMember(t, dir, "member1"), newKeygeneratorMember(t, dir, "member2")}
	user0, user1 := newKeygeneratorMember(t, dir, "user0"), newKeygeneratorMember(t, dir, "user1")
	walkthroughFiles(t, dir, user0, user1)
	n := startMembersNode(t, dir, m)
	for _, mem := range m {
		if out, err := govCLI(t, n, mem, "ack"); err != nil {
			t.Fatalf("charter gov ack as %s (keygenerator.sh key): %v\n%s", mem.Name, err, out)
		}
	}
	ballot := filepath.Join(dir, "vote_accept.js")
	var va struct{ Ballot string }
	if err := json.Unmarshal(readFileT(t, filepath.Join(dir, "vote_accept.json")), &va); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ballot, []byte(va.Ballot), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"set_js_app.json", "set_user0.json", "set_user1.json"} {
		p := govJSON(t, n, m[0], "propose", "--proposal", filepath.Join(dir, file))
		wantState(t, file+" proposed", p, govwire.StateOpen)
		p = govJSON(t, n, m[0], "vote", p.ProposalID, "--ballot", ballot)
		wantState(t, file+" after member0's ballot", p, govwire.StateOpen)
		p = govJSON(t, n, m[1], "vote", p.ProposalID, "--ballot", ballot)
		wantState(t, file+" after member1's ballot", p, govwire.StateAccepted)
	}
	bankingTransactions(t, n, m[0], user0, user1)
	// The CLI's app call reads the keygenerator.sh key as well.
	out, _ := exec.Command(charterCLI, "app", "call", "GET", "/balance/current_account", "--url", n.URL, "--cacert", n.CertPath,
		"--user-key", user0.KeyPath, "--user-cert", user0.CertPath).Output()
	if s, _, b := parseAppCall(t, string(out)); s != 200 || !regexp.MustCompile(`"balance":\s*60`).MatchString(b) {
		t.Fatalf("charter app call with a keygenerator.sh key: %d %s", s, out)
	}
}

// TestScurlThroughFollower runs a member's activation through a follower
// of a three-node network, which forwards it to the leader: the client
// certificate of update_state_digest reaches the leader in the forwarding
// node's word, and the HTTP-signed ack arrives with its signed headers
// intact. A client that writes the forwarding header itself, naming a
// member's certificate while presenting a stranger's, is refused.
func TestScurlThroughFollower(t *testing.T) {
	dir := t.TempDir()
	m0, m1 := newKeygeneratorMember(t, dir, "member0"), newKeygeneratorMember(t, dir, "member1")
	stranger := newKeygeneratorMember(t, dir, "stranger")
	c := startCluster(t, 3, clusterOpts{Members: []string{m0.CertPath, m1.CertPath}})
	c.waitSettled(30 * time.Second)
	leader, _ := c.leader()
	follower := &node{URL: c.node(leader%3 + 1).URL, CertPath: c.certPath}

	if r := curl(t, follower, stranger, "POST", "/gov/ack/update_state_digest", nil); r.Status != 401 || !strings.Contains(string(r.Body), `"UnknownMember"`) {
		t.Fatalf("a stranger's certificate through a follower: %d %s", r.Status, r.Body)
	}
	req, err := http.NewRequest(http.MethodPost, follower.URL+"/gov/ack/update_state_digest", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Charter-Forwarded-Client-Cert", base64.StdEncoding.EncodeToString(m0.Cert.Raw))
	if r := send(t, curlAs(t, follower, stranger), req); r.Status != 401 || !strings.Contains(string(r.Body), `"UnknownMember"`) {
		t.Fatalf("a stranger naming member0's certificate in the forwarding header: %d %s", r.Status, r.Body)
	}

	r := curl(t, follower, m0, "POST", "/gov/ack/update_state_digest", nil)
	if r.Status != 200 {
		t.Fatalf("curl update_state_digest through a follower: %d %s", r.Status, r.Body)
	}
	if a := scurl(t, follower, m0, "/gov/ack", r.Body); a.Status != 204 {
		t.Fatalf("scurl ack through a follower: %d %s", a.Status, a.Body)
	}
	eventually(t, 10*time.Second, "member0 Active on every node", func() error {
		for i := 1; i <= 3; i++ {
			r := curl(t, &node{URL: c.node(i).URL, CertPath: c.certPath}, nil, "GET", "/gov/members", nil)
			var details map[string]struct{ Status string }
			if err := json.Unmarshal(r.Body, &details); err != nil {
				return fmt.Errorf("node %d: %v %s", i, err, r.Body)
			}
			if details[m0.ID].Status != govwire.MemberActive || details[m1.ID].Status != govwire.MemberAccepted {
				return fmt.Errorf("node %d: %s", i, r.Body)
			}
		}
		return nil
	})
}
