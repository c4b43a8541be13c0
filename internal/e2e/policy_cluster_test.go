package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
)

// subjectPolicy refuses statements whose subject is one of denied.
func subjectPolicy(denied ...string) string {
	d, _ := json.Marshal(denied)
	return `const DENIED = ` + string(d) + `;
export function apply(phdr) {
	const sub = phdr.cwt && phdr.cwt.sub;
	if (DENIED.includes(sub)) { return "subject " + sub + " is denied"; }
	return true;
}
`
}

// recordPolicyEventually is recordPolicy on a node that may not have
// replicated txid yet: it waits up to 10 s for the record.
func recordPolicyEventually(t *testing.T, n *node, txid string) [32]byte {
	t.Helper()
	if txid == "" {
		t.Fatal("the registration returned no X-Charter-Transaction-Id (it answered 303, not 201)")
	}
	eventually(t, 10*time.Second, "node has transaction "+txid, func() error {
		if r := n.get(t, "/node/ledger/tx?transaction_id="+txid); r.Status != http.StatusOK {
			return fmt.Errorf("%d %s", r.Status, describeProblem(r))
		}
		return nil
	})
	return recordPolicy(t, n, txid)
}

// TestPolicyClusterChange: on three nodes governance replaces the
// registration policy. Statements registered before keep their receipts on
// every node, byte for byte, and their records keep the old version; after
// the change every node (followers forward to the leader) refuses what the
// new policy refuses and accepts what it accepts.
func TestPolicyClusterChange(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, clusterOpts{})
	pub := newPublisher(t, "policy cluster")
	withSubject := func(sub, tag string) []byte {
		return pub.sign(t, []byte(fmt.Sprintf(`{"run":%q,"tag":%q}`, pub.nonce, tag)), func(o *cose.SignOptions) { o.Subject = sub })
	}
	setPolicy := func(src string) {
		a, err := json.Marshal(map[string]string{"policy": src})
		if err != nil {
			t.Fatal(err)
		}
		c.govAccept("set_registration_policy", string(a))
	}

	v1 := subjectPolicy("pkg:e2e/denied-by-v1")
	setPolicy(v1)
	// One statement through each node, all of a subject the next policy
	// denies.
	var before []*registration
	for i := 1; i <= 3; i++ {
		before = append(before, c.node(i).mustRegister(t, withSubject("pkg:e2e/denied-by-v2", fmt.Sprintf("before-%d", i))))
	}
	for i, reg := range before {
		if v := recordPolicyEventually(t, c.node(1).node, reg.TxID); v != sha256.Sum256([]byte(v1)) {
			t.Errorf("statement %d registered under v1 records policy %x", i, v)
		}
	}

	v2 := subjectPolicy("pkg:e2e/denied-by-v1", "pkg:e2e/denied-by-v2")
	setPolicy(v2)

	// The old statements keep their receipts on every node.
	for i, reg := range before {
		for j := 1; j <= 3; j++ {
			r := c.node(j).get(t, "/entries/"+reg.ID)
			if r.Status != http.StatusOK {
				t.Errorf("statement %d on node %d after the change: %d %s", i, j, r.Status, describeProblem(r))
			} else if !bytes.Equal(r.Body, reg.Receipt) {
				t.Errorf("statement %d on node %d after the change: the receipt changed (%d bytes, was %d)", i, j, len(r.Body), len(reg.Receipt))
			}
			if v := recordPolicyEventually(t, c.node(j).node, reg.TxID); v != sha256.Sum256([]byte(v1)) {
				t.Errorf("statement %d's record on node %d says policy %x, want v1", i, j, v)
			}
		}
	}

	// Every node refuses, with v2's reason, a statement v1 accepted; and
	// accepts one v2 accepts, recording v2.
	for j := 1; j <= 3; j++ {
		r, _ := postStatement(t, c.node(j).node, withSubject("pkg:e2e/denied-by-v2", fmt.Sprintf("after-%d", j)))
		if p := wantPolicyProblem(t, fmt.Sprintf("node %d, denied subject", j), r, "PolicyFailed"); p.Title == "PolicyFailed" && p.Detail != "subject pkg:e2e/denied-by-v2 is denied" {
			t.Errorf("node %d: detail %q, want v2's reason", j, p.Detail)
		}
		reg, err := c.node(j).register(withSubject("pkg:e2e/allowed", fmt.Sprintf("after-%d", j)))
		if err != nil {
			t.Errorf("node %d: a statement v2 accepts: %v", j, err)
			continue
		}
		if v := recordPolicyEventually(t, c.node(j).node, reg.TxID); v != sha256.Sum256([]byte(v2)) {
			t.Errorf("node %d: registration after the change records policy %x, want v2", j, v)
		}
	}
}
