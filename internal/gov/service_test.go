package gov_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgertest"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
)

// startLedger runs a one-node ledger for governance to write to.
func startLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	l := ledgertest.Start(t, t.TempDir(), ledger.Config{CheckpointInterval: 5 * time.Millisecond}).Ledger
	ctx := context.Background()
	// A first transaction so that a checkpoint (the state digest) exists.
	body := []byte("genesis")
	txid, err := l.SubmitWrites(ctx, &log.WriteSet{Writes: []log.Write{{Map: "public:test.genesis", Key: []byte("g"), Value: body}}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the write's own seqno: by the time State is read, the
	// checkpoint covering it may have applied too, and no checkpoint ever
	// covers a checkpoint (the ledger is idle), so waiting for State().Size
	// would wait forever.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.WaitCovered(ctx, txid.Seqno); err != nil {
		t.Fatal(err)
	}
	return l
}

type testMember struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  string
	id   string
}

func newTestMember(t *testing.T, cn string) *testMember {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testMember{key: k, cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), id: govwire.MemberIDOf(c)}
}

func (m *testMember) sign(t *testing.T, typ govwire.MsgType, pid string, payload any) []byte {
	t.Helper()
	var b []byte
	switch p := payload.(type) {
	case []byte:
		b = p
	default:
		var err error
		if b, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	}
	req, err := govwire.SignRequest(rand.Reader, m.key, m.cert, typ, time.Now(), pid, b)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

type env struct {
	t   *testing.T
	ctx context.Context
	l   *ledger.Ledger
	s   *gov.Service
	m   []*testMember
}

func newEnv(t *testing.T, n int) *env {
	t.Helper()
	return newEnvConfig(t, n, gov.Config{})
}

// newEnvConfig is newEnv with cfg (its Limits default to a 200 ms timeout).
func newEnvConfig(t *testing.T, n int, cfg gov.Config) *env {
	t.Helper()
	if cfg.Limits == (policy.Limits{}) {
		cfg.Limits = policy.Limits{Timeout: 200 * time.Millisecond}
	}
	l := startLedger(t)
	e := &env{t: t, ctx: context.Background(), l: l, s: gov.NewService(l, cfg, nil)}
	var specs []gov.MemberSpec
	for i := 0; i < n; i++ {
		m := newTestMember(t, "member")
		e.m = append(e.m, m)
		specs = append(specs, gov.MemberSpec{CertPEM: m.pem})
	}
	if _, err := gov.Bootstrap(e.ctx, l, gov.Genesis{Members: specs, Open: true}, gov.Config{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) activate(m *testMember) {
	e.t.Helper()
	res, err := e.s.UpdateStateDigest(e.ctx, m.id, m.sign(e.t, govwire.MsgStateDigest, "", []byte("{}")))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Ack(e.ctx, m.id, m.sign(e.t, govwire.MsgAck, "", govwire.Ack{StateDigest: res.StateDigest})); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) propose(m *testMember, actions ...govwire.Action) *gov.Result {
	e.t.Helper()
	res, err := e.s.Propose(e.ctx, m.sign(e.t, govwire.MsgProposal, "", govwire.Proposal{Actions: actions}))
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

const accept = "export function vote(proposal, proposerId) { return true }"
const reject = "export function vote(proposal, proposerId) { return false }"

func (e *env) vote(m *testMember, id, ballot string) (*gov.Result, error) {
	return e.s.Vote(e.ctx, id, m.id, m.sign(e.t, govwire.MsgBallot, id, govwire.Ballot{Ballot: ballot}))
}

func (e *env) kv(m, k string) string {
	v, err := e.l.GetKV(m, []byte(k))
	if err != nil {
		return ""
	}
	return string(v)
}

func configAction(maxBytes int) govwire.Action {
	return govwire.Action{Name: "set_scitt_configuration", Args: json.RawMessage(`{"max_statement_bytes": ` + itoa(maxBytes) + `}`)}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// The seed flow of Managed CCF with three members.
func TestSeedFlow(t *testing.T) {
	e := newEnv(t, 3)
	a, b, c := e.m[0], e.m[1], e.m[2]

	// Accepted members cannot propose until they acknowledge.
	if _, err := e.s.Propose(e.ctx, a.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(2048)}})); !errors.Is(err, gov.ErrNotActive) {
		t.Fatalf("inactive member's proposal: %v", err)
	}
	for _, m := range e.m {
		e.activate(m)
	}
	if !strings.Contains(e.kv(govwire.MapMemberInfo, a.id), `"Active"`) {
		t.Fatalf("member a not active: %s", e.kv(govwire.MapMemberInfo, a.id))
	}

	// One vote of three: Open. Two: Accepted and applied.
	p := e.propose(a, configAction(2048))
	if p.Info.State != govwire.StateOpen {
		t.Fatalf("new proposal is %s", p.Info.State)
	}
	if r, err := e.vote(a, p.ProposalID, accept); err != nil || r.Info.State != govwire.StateOpen {
		t.Fatalf("after one vote: %v, %v", r, err)
	}
	if e.kv(govwire.MapSCITTConfig, "configuration") != "" {
		t.Fatal("applied before acceptance")
	}
	r, err := e.vote(b, p.ProposalID, accept)
	if err != nil || r.Info.State != govwire.StateAccepted {
		t.Fatalf("after two votes: %+v, %v", r, err)
	}
	if got := e.kv(govwire.MapSCITTConfig, "configuration"); !strings.Contains(got, `"max_statement_bytes":2048`) {
		t.Fatalf("configuration after acceptance: %s", got)
	}
	// A ballot on a closed proposal is refused.
	if _, err := e.vote(c, p.ProposalID, accept); !errors.Is(err, gov.ErrProposalClosed) {
		t.Fatalf("ballot on a closed proposal: %v", err)
	}

	// Rejected by a majority.
	p2 := e.propose(b, configAction(4096))
	e.vote(a, p2.ProposalID, reject)
	if r, err := e.vote(c, p2.ProposalID, reject); err != nil || r.Info.State != govwire.StateRejected {
		t.Fatalf("rejected proposal: %+v, %v", r, err)
	}

	// Withdrawn by its proposer (and only by it).
	p3 := e.propose(c, configAction(8192))
	if _, err := e.s.Withdraw(e.ctx, p3.ProposalID, a.sign(t, govwire.MsgWithdrawal, p3.ProposalID, []byte("{}"))); !errors.Is(err, gov.ErrNotProposer) {
		t.Fatalf("withdrawal by another member: %v", err)
	}
	if r, err := e.s.Withdraw(e.ctx, p3.ProposalID, c.sign(t, govwire.MsgWithdrawal, p3.ProposalID, []byte("{}"))); err != nil || r.Info.State != govwire.StateWithdrawn {
		t.Fatalf("withdrawal: %+v, %v", r, err)
	}

	// Changing the constitution drops open proposals.
	open := e.propose(a, configAction(1<<16))
	cons, _ := json.Marshal(map[string]string{"constitution": gov.DefaultConstitution + "\n// v2\n"})
	pc := e.propose(b, govwire.Action{Name: "set_constitution", Args: cons})
	e.vote(a, pc.ProposalID, accept)
	if r, err := e.vote(b, pc.ProposalID, accept); err != nil || r.Info.State != govwire.StateAccepted {
		t.Fatalf("constitution change: %+v, %v", r, err)
	}
	if got := e.kv(govwire.MapProposalsInfo, open.ProposalID); !strings.Contains(got, `"Dropped"`) {
		t.Fatalf("open proposal after a constitution change: %s", got)
	}
}

// Each refusal writes nothing.
func TestRefusals(t *testing.T) {
	e := newEnv(t, 3)
	for _, m := range e.m[:2] {
		e.activate(m)
	}
	a, inactive := e.m[0], e.m[2]
	p := e.propose(a, configAction(2048))
	stranger := newTestMember(t, "stranger")
	replay := a.sign(t, govwire.MsgBallot, p.ProposalID, govwire.Ballot{Ballot: reject})
	if _, err := e.s.Vote(e.ctx, p.ProposalID, a.id, replay); err != nil {
		t.Fatal(err)
	}
	forged := a.sign(t, govwire.MsgBallot, p.ProposalID, govwire.Ballot{Ballot: accept})
	forged[len(forged)-1] ^= 1
	loop := a.sign(t, govwire.MsgBallot, p.ProposalID, govwire.Ballot{Ballot: "export function vote() { for (;;) {} }"})
	// Checkpoints may still follow; the last content transaction may not.
	size := e.l.State().LastContentSeqno
	for name, c := range map[string]struct {
		run  func() error
		want error
	}{
		"non-member": {func() error {
			_, err := e.s.Propose(e.ctx, stranger.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{configAction(1024)}}))
			return err
		}, govwire.ErrUnknownMember},
		"inactive member's ballot": {func() error { _, err := e.vote(inactive, p.ProposalID, accept); return err }, gov.ErrNotActive},
		"forged signature":         {func() error { _, err := e.s.Vote(e.ctx, p.ProposalID, a.id, forged); return err }, govwire.ErrBadSignature},
		"replayed ballot":          {func() error { _, err := e.s.Vote(e.ctx, p.ProposalID, a.id, replay); return err }, govwire.ErrReplay},
		"malformed COSE":           {func() error { _, err := e.s.Propose(e.ctx, []byte("not cose")); return err }, govwire.ErrMalformed},
		"unknown action": {func() error {
			_, err := e.s.Propose(e.ctx, a.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{{Name: "format_disk", Args: json.RawMessage(`{}`)}}}))
			return err
		}, gov.ErrInvalidProposal},
		"invalid arguments": {func() error {
			_, err := e.s.Propose(e.ctx, a.sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{{Name: "set_scitt_configuration", Args: json.RawMessage(`{"allowed_algorithms":["MD5"]}`)}}}))
			return err
		}, gov.ErrInvalidProposal},
		"ballot that is not JS": {func() error { _, err := e.vote(a, p.ProposalID, "export function vote( {"); return err }, gov.ErrBadBallot},
	} {
		if err := c.run(); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := e.l.State().LastContentSeqno; got != size {
		t.Fatalf("refusals wrote %d transactions", got-size)
	}
	// A ballot that loops forever is stopped within its limit and counted
	// as a failed vote; governance keeps working.
	start := time.Now()
	r, err := e.s.Vote(e.ctx, p.ProposalID, a.id, loop)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second || r.Info.VoteFailures[a.id] == "" {
		t.Fatalf("looping ballot: took %v, failures %v", time.Since(start), r.Info.VoteFailures)
	}
	if r, err := e.vote(e.m[1], p.ProposalID, accept); err != nil || r.Info.State != govwire.StateOpen {
		t.Fatalf("after the looping ballot: %+v, %v", r, err)
	}
}

// A constitution that does not compile, or lacks an export, is refused at
// proposal time: applied, it would leave the network unable to govern.
func TestBrokenConstitutionRefused(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	for name, src := range map[string]string{
		"syntax":          "export function validate( {",
		"missing resolve": "export function validate() { return {valid: true} }\nexport function apply() {}",
	} {
		args, _ := json.Marshal(map[string]string{"constitution": src})
		_, err := e.s.Propose(e.ctx, e.m[0].sign(t, govwire.MsgProposal, "", govwire.Proposal{Actions: []govwire.Action{{Name: "set_constitution", Args: args}}}))
		if !errors.Is(err, gov.ErrInvalidProposal) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
