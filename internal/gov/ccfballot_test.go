package gov_test

import (
	"testing"

	"github.com/charterlog/charter/internal/govwire"
)

// A ballot written as CCF's are reads the state through ccf.kv (here: it
// votes for a proposal only while the proposer is an Active member), and
// one that tries to write through it is a failed vote, not a write.
func TestCCFBallot(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	ccfBallot := `export function vote(proposal, proposerId) {
  const raw = ccf.kv["public:ccf.gov.members.info"].get(ccf.strToBuf(proposerId));
  return raw !== undefined && ccf.bufToJsonCompatible(raw).status === "Active";
}`
	p := e.propose(e.m[0], configAction(4096))
	r, err := e.vote(e.m[0], p.ProposalID, ccfBallot)
	if err != nil {
		t.Fatal(err)
	}
	if r.Info.State != govwire.StateAccepted {
		t.Fatalf("a ccf.kv ballot for an active proposer: %s %+v", r.Info.State, r.Info)
	}

	writer := `export function vote(proposal, proposerId) {
  ccf.kv["public:ccf.gov.users.info"].set(ccf.strToBuf("u"), ccf.jsonCompatibleToBuf({}));
  return true;
}`
	p = e.propose(e.m[0], configAction(8192))
	r, err = e.vote(e.m[0], p.ProposalID, writer)
	if err != nil {
		t.Fatal(err)
	}
	if r.Info.State != govwire.StateOpen || r.Info.VoteFailures[e.m[0].id] == "" {
		t.Fatalf("a ballot that writes through ccf.kv: %s, failures %v", r.Info.State, r.Info.VoteFailures)
	}
	if e.kv(govwire.MapUserInfo, "u") != "" {
		t.Fatal("a ballot wrote through ccf.kv")
	}
}
