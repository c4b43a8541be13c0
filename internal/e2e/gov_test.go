package e2e

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

// govMember is a member identity made by the test: a self-signed
// certificate and its PKCS#8 key, as files for the CLI and in memory for
// requests the CLI would never send.
type govMember struct {
	Name     string
	KeyPath  string
	CertPath string
	ID       string
	Signer   crypto.Signer
	Cert     *x509.Certificate
}

func newGovMember(t *testing.T, dir, name string, curve elliptic.Curve) *govMember {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	m := &govMember{
		Name: name, Signer: k, Cert: cert, ID: govwire.MemberIDOf(cert),
		KeyPath: filepath.Join(dir, name+"_privk.pem"), CertPath: filepath.Join(dir, name+"_cert.pem"),
	}
	if err := os.WriteFile(m.KeyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.CertPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// sign makes a governance request signed by m, now.
func (m *govMember) sign(t *testing.T, typ govwire.MsgType, proposalID string, payload []byte) []byte {
	t.Helper()
	b, err := govwire.SignRequest(rand.Reader, m.Signer, m.Cert, typ, time.Now(), proposalID, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startMembersNode writes a single-node configuration naming members and
// runs `charterd create --config` on it; like startNode otherwise.
func startMembersNode(t *testing.T, dir string, members []*govMember) *node {
	t.Helper()
	dataDir := filepath.Join(dir, "data")
	cfg := config.Config{DataDir: dataDir, Addr: "127.0.0.1:0", LogLevel: "debug"}
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
		return err == nil && r.Status == http.StatusOK && bytes.Contains(r.Body, []byte(members[0].ID))
	})
	return n
}

// govCLI runs `charter gov SUB` as member m (nil: no signing flags).
func govCLI(t *testing.T, n *node, m *govMember, sub string, args ...string) (string, error) {
	t.Helper()
	full := []string{"gov", sub, "--url", n.URL, "--cacert", n.CertPath}
	if m != nil {
		full = append(full, "--member-key", m.KeyPath, "--member-cert", m.CertPath)
	}
	return runCLI(t, t.TempDir(), append(full, args...)...)
}

// proposalOut is the JSON the proposal commands print.
type proposalOut struct {
	ProposalID   string          `json:"proposalId"`
	ProposerID   string          `json:"proposerId"`
	State        string          `json:"proposalState"`
	BallotCount  int             `json:"ballotCount"`
	FinalVotes   map[string]bool `json:"finalVotes"`
	VoteFailures map[string]struct {
		Reason string `json:"reason"`
	} `json:"voteFailures"`
	TransactionID string `json:"transactionId"`
}

// govTx is a governance transaction the test expects to find in the ledger,
// signed by member with a request of type typ.
type govTx struct {
	id     string
	typ    govwire.MsgType
	member string
}

// govJSON runs a proposal command and decodes its output; it fails the test
// unless the command succeeds.
func govJSON(t *testing.T, n *node, m *govMember, sub string, args ...string) proposalOut {
	t.Helper()
	out, err := govCLI(t, n, m, sub, args...)
	if err != nil {
		who := "nobody"
		if m != nil {
			who = m.Name
		}
		t.Fatalf("charter gov %s %v as %s: %v\n%s", sub, args, who, err, out)
	}
	var p proposalOut
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("charter gov %s: output is not the proposal JSON: %v\n%s", sub, err, out)
	}
	return p
}

func wantState(t *testing.T, what string, p proposalOut, state string) {
	t.Helper()
	if p.State != state {
		t.Fatalf("%s: proposal %s is %q, want %q (%+v)", what, p.ProposalID, p.State, state, p)
	}
}

// statementOfSize signs a statement of exactly size bytes.
func statementOfSize(t *testing.T, p *publisher, size int, tag string) []byte {
	t.Helper()
	payload := func(n int) []byte {
		return []byte(fmt.Sprintf(`{"tag":%q,"pad":%q}`, tag+p.nonce, strings.Repeat("x", n)))
	}
	guess := size - 1000
	s := p.sign(t, payload(guess))
	s = p.sign(t, payload(guess+size-len(s)))
	if len(s) != size {
		t.Fatalf("could not make a %d-byte statement (got %d)", size, len(s))
	}
	return s
}

// TestGovSeedFlow drives a network of three members through the CLI: the
// members activate themselves, change the registration configuration by
// majority, reject, withdraw, and replace the constitution, which drops an
// open proposal; every governance transaction then verifies offline and
// names its signer.
func TestGovSeedFlow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	m2 := newGovMember(t, dir, "m2", elliptic.P384())
	m3 := newGovMember(t, dir, "m3", elliptic.P256())
	n := startMembersNode(t, dir, []*govMember{m1, m2, m3})

	// Members named in the configuration start Accepted and cannot act.
	assertMemberStatus(t, n, map[string]string{m1.ID: "Accepted", m2.ID: "Accepted", m3.ID: "Accepted"})
	out, err := govCLI(t, n, m1, "propose", "--action", "transition_service_to_open", "--args", "{}")
	if err == nil || !strings.Contains(out, "MemberNotActive") {
		t.Fatalf("a proposal by an Accepted member: err %v, output %q; want MemberNotActive", err, out)
	}
	for _, m := range []*govMember{m1, m2, m3} {
		out, err := govCLI(t, n, m, "ack")
		if err != nil || !strings.Contains(out, m.ID) {
			t.Fatalf("charter gov ack as %s: %v\n%s", m.Name, err, out)
		}
	}
	assertMemberStatus(t, n, map[string]string{m1.ID: "Active", m2.ID: "Active", m3.ID: "Active"})

	var txs []govTx
	record := func(p proposalOut, typ govwire.MsgType, m *govMember) {
		t.Helper()
		if p.TransactionID == "" {
			t.Fatalf("%s by %s: no transactionId in %+v", typ, m.Name, p)
		}
		txs = append(txs, govTx{p.TransactionID, typ, m.ID})
	}

	// A 5000-byte statement is fine under the default 1 MiB limit.
	pub := newPublisher(t, "gov-e2e")
	big1 := statementOfSize(t, pub, 5000, "before")
	before := n.mustRegister(t, big1)

	// set_scitt_configuration: one vote of three is not a majority, two are.
	p := govJSON(t, n, m1, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 4096}`)
	wantState(t, "after proposing", p, "Open")
	record(p, govwire.MsgProposal, m1)
	cfgID := p.ProposalID
	v := govJSON(t, n, m1, "vote", cfgID, "--accept")
	wantState(t, "after m1's vote", v, "Open")
	record(v, govwire.MsgBallot, m1)
	v = govJSON(t, n, m2, "vote", cfgID, "--accept")
	wantState(t, "after m2's vote", v, "Accepted")
	record(v, govwire.MsgBallot, m2)
	if !v.FinalVotes[m1.ID] || !v.FinalVotes[m2.ID] || len(v.FinalVotes) != 2 {
		t.Errorf("final votes %v, want m1 and m2 true", v.FinalVotes)
	}

	// The new limit holds for later registrations only.
	r := n.get(t, "/entries/"+before.ID)
	if r.Status != http.StatusOK {
		t.Fatalf("receipt of the statement registered before the change: %d %s", r.Status, describeProblem(r))
	}
	if rc, err := cose.ParseReceipt(r.Body); err != nil || rc.Inclusion[0].LeafIndex != before.LeafIndex {
		t.Fatalf("receipt of the statement registered before the change: %v (leaf index, want %d)", err, before.LeafIndex)
	}
	big2 := statementOfSize(t, pub, 5000, "after")
	if _, err := n.register(big2); err == nil {
		t.Fatal("a 5000-byte statement was registered after max_statement_bytes became 4096")
	} else if se := (*statusError)(nil); !errors.As(err, &se) || se.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(se.Detail, "PayloadTooLarge") {
		t.Fatalf("a 5000-byte statement after the change: %v; want 413 PayloadTooLarge", err)
	}
	n.mustRegister(t, pub.unique(t)) // small ones still pass

	// Two votes against of three reject.
	p = govJSON(t, n, m2, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 8192}`)
	wantState(t, "rejected one, proposed", p, "Open")
	record(p, govwire.MsgProposal, m2)
	v = govJSON(t, n, m1, "vote", "--reject", p.ProposalID)
	wantState(t, "after one vote against", v, "Open")
	record(v, govwire.MsgBallot, m1)
	v = govJSON(t, n, m3, "vote", p.ProposalID, "--reject")
	wantState(t, "after two votes against", v, "Rejected")
	record(v, govwire.MsgBallot, m3)

	// The proposer withdraws.
	p = govJSON(t, n, m3, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 16384}`)
	record(p, govwire.MsgProposal, m3)
	w := govJSON(t, n, m3, "withdraw", p.ProposalID)
	wantState(t, "after withdrawal", w, "Withdrawn")
	record(w, govwire.MsgWithdrawal, m3)

	// A new constitution drops the proposals still open.
	oldConst, err := govCLI(t, n, nil, "constitution")
	if err != nil || !strings.Contains(oldConst, "export function resolve") {
		t.Fatalf("charter gov constitution: %v\n%.200s", err, oldConst)
	}
	if oldConst != gov.DefaultConstitution {
		t.Errorf("the network's constitution is not the default one")
	}
	newConst := oldConst + "\n// Amended by TestGovSeedFlow.\n"
	argsFile := filepath.Join(dir, "constitution-args.json")
	ab, _ := json.Marshal(map[string]string{"constitution": newConst})
	if err := os.WriteFile(argsFile, ab, 0o644); err != nil {
		t.Fatal(err)
	}
	open := govJSON(t, n, m3, "propose", "--action", "set_scitt_configuration", "--args", `{"allowed_algorithms": ["ES256"]}`)
	wantState(t, "the proposal to be dropped", open, "Open")
	record(open, govwire.MsgProposal, m3)
	p = govJSON(t, n, m2, "propose", "--action", "set_constitution", "--args", "@"+argsFile)
	record(p, govwire.MsgProposal, m2)
	record(govJSON(t, n, m2, "vote", p.ProposalID, "--accept"), govwire.MsgBallot, m2)
	v = govJSON(t, n, m3, "vote", p.ProposalID, "--accept")
	wantState(t, "set_constitution", v, "Accepted")
	record(v, govwire.MsgBallot, m3)
	if got, err := govCLI(t, n, nil, "constitution"); err != nil || got != newConst {
		t.Errorf("constitution after set_constitution: %v; amended text in force: %v", err, got == newConst)
	}
	shown := govJSON(t, n, nil, "show", open.ProposalID)
	wantState(t, "the open proposal after set_constitution", shown, "Dropped")
	if shown := govJSON(t, n, nil, "show", cfgID); shown.State != "Accepted" {
		t.Errorf("the closed proposal %s became %s after set_constitution, want Accepted", cfgID, shown.State)
	}
	// Dropped means closed: its pending configuration never applies.
	n.mustRegister(t, pub.unique(t))

	// Every governance transaction is in the ledger, verifiably, with the
	// signed request that caused it.
	keysPath := filepath.Join(dir, "service-keys.cbor")
	if out, err := runCLI(t, dir, "keys", "--url", n.URL, "--cacert", n.CertPath, "--out", keysPath); err != nil {
		t.Fatalf("charter keys: %v\n%s", err, out)
	}
	for i, tx := range txs {
		rec, rcpt := filepath.Join(dir, fmt.Sprintf("tx%d.cbor", i)), filepath.Join(dir, fmt.Sprintf("tx%d.cose", i))
		eventually(t, 10*time.Second, "charter tx get "+tx.id, func() error {
			out, err := runCLI(t, dir, "tx", "get", "--url", n.URL, "--cacert", n.CertPath, "--out-record", rec, "--out-receipt", rcpt, tx.id)
			if err != nil && !strings.Contains(out, "NotYetCovered") {
				t.Fatalf("charter tx get %s: %v\n%s", tx.id, err, out)
			}
			if err != nil {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		out, err := runCLI(t, dir, "tx", "verify", "--service-keys", keysPath, "--record", rec, "--receipt", rcpt)
		if err != nil {
			t.Fatalf("charter tx verify %s: %v\n%s", tx.id, err, out)
		}
		if want := fmt.Sprintf("ok   transaction %s (writes)", tx.id); !strings.Contains(out, want) {
			t.Errorf("charter tx verify %s: no %q in\n%s", tx.id, want, out)
		}
		// Charter's receipts sign the tree size, so the leaf is a fact.
		if strings.Contains(out, client.NotSignedByService) {
			t.Errorf("charter tx verify %s: the leaf is marked unsigned in\n%s", tx.id, out)
		}
		if want := fmt.Sprintf("signed %s request by member %s", tx.typ, tx.member); !strings.Contains(out, want) {
			t.Errorf("charter tx verify %s: no %q in\n%s", tx.id, want, out)
		}
	}
	t.Logf("verified %d governance transactions offline", len(txs))
	// A tampered record does not verify.
	rec := filepath.Join(dir, "tx0.cbor")
	b, _ := os.ReadFile(rec)
	b = bytes.Replace(b, []byte("max_statement_bytes"), []byte("max_statement_bytez"), 1)
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, dir, "tx", "verify", "--service-keys", keysPath, "--record", rec, "--receipt", filepath.Join(dir, "tx0.cose")); err == nil {
		t.Errorf("charter tx verify accepted a tampered record:\n%s", out)
	}
}

func assertMemberStatus(t *testing.T, n *node, want map[string]string) {
	t.Helper()
	r := n.get(t, v7("/gov/service/members"))
	var body struct {
		Value []struct {
			MemberID string `json:"memberId"`
			Status   string `json:"status"`
		} `json:"value"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || r.Status != http.StatusOK {
		t.Fatalf("/gov/service/members: %d %v %s", r.Status, err, r.Body)
	}
	got := map[string]string{}
	for _, m := range body.Value {
		got[m.MemberID] = m.Status
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("members %v, want %v", got, want)
	}
}

// v7 is path of CCF 7's governance API with the api-version Charter's
// tools name (spec/governance.md).
func v7(path string) string { return path + "?api-version=2024-07-01" }

// postGov sends a governance request body with a content type.
func postGov(t *testing.T, n *node, path, contentType string, body []byte) *response {
	t.Helper()
	r, err := n.do(http.MethodPost, path, contentType, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return r
}

// ledgerMark is where the ledger stood before a refusal.
type ledgerMark struct {
	size     uint64
	proposal []byte
}

func (n *node) mark(t *testing.T, proposalID string) ledgerMark {
	t.Helper()
	return ledgerMark{size: n.health(t).LedgerSize, proposal: n.get(t, v7("/gov/members/proposals/"+proposalID)).Body}
}

// nothingWritten checks that since m nothing but checkpoints reached the
// ledger (a refused request may still be followed by the checkpoint of an
// earlier transaction) and that the proposal's record is unchanged.
func (n *node) nothingWritten(t *testing.T, what string, m ledgerMark, proposalID string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // time for a write to show if there were one: not a wait
	h := n.health(t)
	for s := m.size + 1; s <= h.LedgerSize; s++ {
		r := n.get(t, fmt.Sprintf("/node/ledger/tx?transaction_id=%d.%d", h.View, s))
		if r.Status != http.StatusOK {
			t.Errorf("%s: GET /node/ledger/tx %d.%d: %d %s", what, h.View, s, r.Status, describeProblem(r))
			continue
		}
		rec, err := log.UnmarshalRecord(r.Body)
		if err != nil {
			t.Errorf("%s: record %d: %v", what, s, err)
		} else if rec.Type != log.TxCheckpoint {
			t.Errorf("%s: the refusal was followed by a %s transaction %d.%d", what, rec.Type, rec.View, rec.Seqno)
		}
	}
	if got := n.get(t, v7("/gov/members/proposals/"+proposalID)).Body; !bytes.Equal(got, m.proposal) {
		t.Errorf("%s: proposal %s changed:\n%s\nthen\n%s", what, proposalID, m.proposal, got)
	}
}

// TestGovRefusals sends requests governance must refuse, over HTTP, and
// checks that each is answered with its problem and writes nothing; and
// that a ballot that never returns is cut off, recorded as a failed vote,
// without stopping registrations.
func TestGovRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	m2 := newGovMember(t, dir, "m2", elliptic.P384())
	m3 := newGovMember(t, dir, "m3", elliptic.P256()) // stays Accepted
	outsider := newGovMember(t, dir, "outsider", elliptic.P256())
	n := startMembersNode(t, dir, []*govMember{m1, m2, m3})
	for _, m := range []*govMember{m1, m2} {
		if out, err := govCLI(t, n, m, "ack"); err != nil {
			t.Fatalf("charter gov ack as %s: %v\n%s", m.Name, err, out)
		}
	}
	assertMemberStatus(t, n, map[string]string{m1.ID: "Active", m2.ID: "Active", m3.ID: "Accepted"})

	// P stays open: m1's vote alone is not a majority of two.
	p := govJSON(t, n, m1, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 100000}`)
	pid := p.ProposalID
	ballotPath := func(id string, m *govMember) string {
		return v7("/gov/members/proposals/" + id + "/ballots/" + m.ID + ":submit")
	}
	accept, _ := json.Marshal(govwire.Ballot{Ballot: "export function vote() { return true }"})
	m1Ballot := m1.sign(t, govwire.MsgBallot, pid, accept)
	r := postGov(t, n, ballotPath(pid, m1), "application/cose", m1Ballot)
	if r.Status != http.StatusOK {
		t.Fatalf("m1's ballot: %d %s", r.Status, describeProblem(r))
	}
	// Q is closed.
	q := govJSON(t, n, m1, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 200000}`)
	wantState(t, "Q withdrawn", govJSON(t, n, m1, "withdraw", q.ProposalID), "Withdrawn")
	n.waitIdle(t)

	proposal, _ := json.Marshal(govwire.Proposal{Actions: []govwire.Action{{Name: "transition_service_to_open", Args: json.RawMessage("{}")}}})
	forged := m2.sign(t, govwire.MsgBallot, pid, accept)
	forged[len(forged)-1] ^= 0x01
	m2Ballot := m2.sign(t, govwire.MsgBallot, pid, accept)
	cases := []struct {
		what         string
		path         string
		contentType  string
		body         []byte
		status       int
		title        string
		afterwardsOK bool // the same request, sent properly, then succeeds
	}{
		{what: "a non-member's proposal", path: v7("/gov/members/proposals:create"), body: outsider.sign(t, govwire.MsgProposal, "", proposal),
			status: http.StatusUnauthorized, title: "UnknownMember"},
		{what: "an Accepted (inactive) member's ballot", path: ballotPath(pid, m3), body: m3.sign(t, govwire.MsgBallot, pid, accept),
			status: http.StatusForbidden, title: "MemberNotActive"},
		{what: "a forged signature", path: ballotPath(pid, m2), body: forged,
			status: http.StatusUnauthorized, title: "InvalidSignature"},
		{what: "a replayed ballot", path: ballotPath(pid, m1), body: m1Ballot,
			status: http.StatusConflict, title: "ProposalReplay"},
		{what: "a ballot on a withdrawn proposal", path: ballotPath(q.ProposalID, m2), body: m2.sign(t, govwire.MsgBallot, q.ProposalID, accept),
			status: http.StatusConflict, title: "ProposalNotOpen"},
		{what: "a withdrawal by another member", path: v7("/gov/members/proposals/" + pid + ":withdraw"), body: m2.sign(t, govwire.MsgWithdrawal, pid, []byte("{}")),
			status: http.StatusForbidden, title: "NotProposer"},
		{what: "a ballot sent to another member's URL", path: ballotPath(pid, m1), body: m2.sign(t, govwire.MsgBallot, pid, accept),
			status: http.StatusBadRequest, title: "RequestDoesNotMatchURL"},
		{what: "a malformed COSE body", path: ballotPath(pid, m2), body: []byte("\xd2\x84not a COSE_Sign1"),
			status: http.StatusBadRequest, title: "InvalidGovernanceRequest"},
		{what: "a withdrawal sent as a ballot", path: ballotPath(pid, m2), body: m2.sign(t, govwire.MsgWithdrawal, pid, []byte("{}")),
			status: http.StatusBadRequest, title: "WrongMessageType"},
		{what: "a ballot as application/json", path: ballotPath(pid, m2), contentType: "application/json", body: m2Ballot,
			status: http.StatusUnsupportedMediaType, title: "UnsupportedContentType", afterwardsOK: true},
	}
	for _, c := range cases {
		ct := c.contentType
		if ct == "" {
			ct = "application/cose"
		}
		m := n.mark(t, pid)
		r := postGov(t, n, c.path, ct, c.body)
		wantCCFError(t, c.what, r, c.status, c.title)
		n.nothingWritten(t, c.what, m, pid)
		if c.afterwardsOK {
			// Refused before it was read: the same request is not a replay.
			r := postGov(t, n, c.path, "application/cose", c.body)
			if r.Status != http.StatusOK {
				t.Errorf("%s, then sent as application/cose: %d %s", c.what, r.Status, describeProblem(r))
			}
		}
	}

	// A ballot that never returns: a fresh proposal R, voted on by m1 with a
	// ballot that loops, while a registration runs.
	rp := govJSON(t, n, m2, "propose", "--action", "set_scitt_configuration", "--args", `{"max_statement_bytes": 300000}`)
	loop, _ := json.Marshal(govwire.Ballot{Ballot: "export function vote() { for(;;){} }"})
	pub := newPublisher(t, "gov-refusals")
	var wg sync.WaitGroup
	var regErr error
	var regTime time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		_, regErr = n.register(pub.unique(t))
		regTime = time.Since(start)
	}()
	start := time.Now()
	r = postGov(t, n, ballotPath(rp.ProposalID, m1), "application/cose", m1.sign(t, govwire.MsgBallot, rp.ProposalID, loop))
	took := time.Since(start)
	wg.Wait()
	if regErr != nil {
		t.Errorf("a registration alongside the looping ballot: %v", regErr)
	} else if regTime > 5*time.Second {
		t.Errorf("a registration alongside the looping ballot took %v", regTime)
	}
	if took > 5*time.Second {
		t.Errorf("the looping ballot was answered after %v", took)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("the looping ballot: %d %s; want 200 with a failed vote", r.Status, describeProblem(r))
	}
	var got proposalOut
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatalf("the looping ballot's answer: %v: %s", err, r.Body)
	}
	if got.State != "Open" || got.BallotCount != 1 || got.VoteFailures[m1.ID].Reason == "" || got.TransactionID == "" {
		t.Errorf("after the looping ballot: %+v; want Open, one ballot, m1's vote failed, a transaction", got)
	}
	// The failure is recorded, and the proposal can still pass.
	shown := govJSON(t, n, nil, "show", rp.ProposalID)
	if shown.VoteFailures[m1.ID].Reason == "" {
		t.Errorf("GET the proposal after the looping ballot: no vote failure for m1: %+v", shown)
	}
	v := govJSON(t, n, m2, "vote", rp.ProposalID, "--accept")
	wantState(t, "after m2's vote beside m1's failed one", v, "Open")
	if _, err := n.register(pub.unique(t)); err != nil {
		t.Errorf("registering after the looping ballot: %v", err)
	}
}

// TestGovProposeWithoutArgs proposes an action that takes no arguments the
// way the CLI's usage suggests, without --args.
//
// It guards a fixed defect: without omitempty on govwire.Action.Args the CLI
// sent {"name": "transition_service_to_open", "args": null}, which the
// server's strict proposal parsing refuses (400 InvalidGovernanceRequest:
// "args is not a JSON object"). Omitting args, or sending {}, is accepted.
func TestGovProposeWithoutArgs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	n := startMembersNode(t, dir, []*govMember{m1})
	if out, err := govCLI(t, n, m1, "ack"); err != nil {
		t.Fatalf("charter gov ack: %v\n%s", err, out)
	}
	out, err := govCLI(t, n, m1, "propose", "--action", "transition_service_to_open")
	if err != nil {
		t.Fatalf("charter gov propose --action transition_service_to_open (no --args): %v\n%s", err, out)
	}
	var p proposalOut
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.State != "Open" {
		t.Fatalf("the proposal: %v %+v; want Open", err, p)
	}
}
