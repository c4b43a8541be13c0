package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/log"
)

// rekeyBundle is an app over one private map, "records": PUT writes a
// key, GET reads it back.
func rekeyBundle(t *testing.T) string {
	t.Helper()
	module := `const records = ccf.kv["records"];
export function put(request) {
  records.set(ccf.strToBuf(request.params.k), ccf.strToBuf(request.body.text()));
  return { statusCode: 204 };
}
export function get(request) {
  const v = records.get(ccf.strToBuf(request.params.k));
  if (v === undefined) return { statusCode: 404, body: "no such key" };
  return { body: ccf.bufToStr(v) };
}`
	// Reads are served by the node asked (never forwarded), so each node
	// decrypts with the secrets it holds.
	ep := func(fn, mode, forwarding string) map[string]any {
		return map[string]any{"js_module": "endpoints/records.js", "js_function": fn, "authn_policies": []string{"no_auth"},
			"forwarding_required": forwarding, "mode": mode}
	}
	b, err := json.Marshal(map[string]any{"bundle": map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/records/{k}": map[string]any{
			"put": ep("put", "readwrite", "always"), "get": ep("get", "readonly", "never")}}},
		"modules": []map[string]string{{"name": "endpoints/records.js", "module": module}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// putRecord writes k=v through node m and returns the transaction id.
func putRecord(t *testing.T, m *member, k, v string) string {
	t.Helper()
	var tx string
	eventually(t, 20*time.Second, "PUT /app/records/"+k, func() error {
		r, err := m.do(http.MethodPut, "/app/records/"+k, "text/plain", []byte(v))
		if err != nil {
			return err
		}
		if r.Status != http.StatusNoContent {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		tx = r.Header.Get("x-ms-ccf-transaction-id")
		return nil
	})
	return tx
}

// readsBack waits until node m reads every key of want with its value.
func readsBack(t *testing.T, m *member, what string, want map[string]string) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() error {
		for k, v := range want {
			r, err := m.do(http.MethodGet, "/app/records/"+k, "", nil)
			if err != nil {
				return err
			}
			if r.Status != http.StatusOK || string(r.Body) != v {
				return fmt.Errorf("node %d, key %s: %d %s", m.id, k, r.Status, r.Body)
			}
		}
		return nil
	})
}

// sealedVersion is the ledger secret version that sealed the private
// value transaction tx wrote, as node m's ledger records it.
func sealedVersion(t *testing.T, m *member, tx string) uint64 {
	t.Helper()
	var v uint64
	eventually(t, 20*time.Second, "transaction "+tx+" in node "+fmt.Sprint(m.id)+"'s ledger", func() error {
		r, err := m.do(http.MethodGet, "/node/ledger/tx?transaction_id="+tx, "", nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("%d %s", r.Status, describeProblem(r))
		}
		rec, err := log.UnmarshalRecord(r.Body)
		if err != nil {
			return err
		}
		atx, err := log.UnmarshalAppTx(rec.Body)
		if err != nil {
			return err
		}
		for _, w := range atx.Writes {
			if strings.HasPrefix(w.Map, "private:") && len(w.Value) > 9 && w.Value[0] == 1 {
				v = binary.BigEndian.Uint64(w.Value[1:9])
				return nil
			}
		}
		return fmt.Errorf("transaction %s wrote no versioned private value", tx)
	})
	return v
}

// TestLedgerRekey: private data written before trigger_ledger_rekey and
// after it (under the new version) reads back on every node, after a
// node's restart, and on a node that joins after the rekey; every node
// keeps the new version sealed, the same on each.
func TestLedgerRekey(t *testing.T) {
	c := startCluster(t, 2, clusterOpts{})
	c.govAccept("set_js_app", rekeyBundle(t))
	want := map[string]string{}
	before := putRecord(t, c.node(1), "before", "written under version 0")
	want["before"] = "written under version 0"
	if v := sealedVersion(t, c.node(1), before); v != 0 {
		t.Fatalf("a value before any rekey names version %d", v)
	}
	readsBack(t, c.node(2), "node 2 reads what was written before the rekey", want)

	lead, term := c.leader()
	c.govAccept("trigger_ledger_rekey", "{}")
	var after string
	eventually(t, 30*time.Second, "a write sealed under version 1", func() error {
		after = putRecord(t, c.node(2), "after", "written under version 1")
		if v := sealedVersion(t, c.node(1), after); v != 1 {
			return fmt.Errorf("the write names version %d", v)
		}
		return nil
	})
	want["after"] = "written under version 1"
	for i := 1; i <= 2; i++ {
		readsBack(t, c.node(i), fmt.Sprintf("node %d reads both versions' values", i), want)
	}
	// The primary made the version; the follower, under the same leader
	// throughout, wrote nothing of it.
	if lead2, term2 := c.leader(); lead2 == lead && term2 == term {
		if !c.logContains(lead, "recovery sharing written") || c.logContains(3-lead, "recovery sharing written") {
			t.Fatalf("under leader %d, the recovery write set was not written by it alone", lead)
		}
	}
	v1 := unsealed(t, c.node(1).dataDir, "ledger_secrets_later.sealed")
	if !bytes.Equal(unsealed(t, c.node(2).dataDir, "ledger_secrets_later.sealed"), v1) {
		t.Fatal("the nodes keep different later ledger secrets")
	}

	// A restarted node reads both from what it kept sealed.
	c.stop(2)
	c.restart(2)
	c.node(2).waitHealthy(30 * time.Second)
	readsBack(t, c.node(2), "node 2 reads both after its restart", want)

	// A node that joins after the rekey receives version 0 by attested
	// release and version 1 sealed to its key in the ledger.
	j := c.addJoiner(1)
	j.start()
	c.waitRole(3, "learner")
	c.govAccept("transition_node_to_trusted", `{"node_id":"3"}`)
	c.waitRoleWithin(30*time.Second, 3, "voter")
	j.waitHealthy(30 * time.Second)
	readsBack(t, j, "the node that joined after the rekey reads both", want)
	if !bytes.Equal(unsealed(t, j.dataDir, "ledger_secrets_later.sealed"), v1) {
		t.Fatal("the joined node keeps a different version 1")
	}
	// And writes under version 1.
	last := putRecord(t, j, "joined", "written through the joined node")
	if v := sealedVersion(t, j, last); v != 1 {
		t.Fatalf("a write through the joined node names version %d", v)
	}

	// No file of any node holds version 1 in clear.
	var later map[string][]byte
	if err := json.Unmarshal(v1, &later); err != nil || len(later["1"]) != 32 {
		t.Fatalf("ledger_secrets_later.sealed holds %q (%v)", v1, err)
	}
	for i := 1; i <= 3; i++ {
		c.stop(i)
		err := filepath.WalkDir(c.node(i).dataDir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err == nil && bytes.Contains(b, later["1"]) {
				t.Errorf("%s holds ledger secret version 1 in clear", path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestRekeyPrimaryCrash: the primary dies after making a new ledger
// secret version (kept sealed on its disk) and before proposing it. The
// rekey request is still unanswered in the ledger, so the node, restarted
// and primary in a new term, answers it: once (version 1, no version 2),
// and values before and after read back.
func TestRekeyPrimaryCrash(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{})
	c.govAccept("set_js_app", rekeyBundle(t))
	want := map[string]string{"before": "written under version 0"}
	putRecord(t, c.node(1), "before", want["before"])

	m := c.node(1)
	c.stop(1)
	m.nextEnv = []string{fault.EnvCrashAt + "=" + fault.RekeyBeforePropose}
	c.restart(1)
	m0 := &govMember{Name: "member0", KeyPath: filepath.Join(c.dir, "member0_privk.pem"), CertPath: filepath.Join(c.dir, "member0_cert.pem")}
	p := govJSON(t, m.node, m0, "propose", "--action", "trigger_ledger_rekey", "--args", "{}")
	// The vote applies the action, and the node may die before it
	// answers: its answer is not awaited.
	_, _ = govCLI(t, m.node, m0, "vote", p.ProposalID, "--accept")
	select {
	case <-m.doneCh():
	case <-time.After(60 * time.Second):
		t.Fatal("the primary did not reach the crash point within 60s")
	}
	var ee *exec.ExitError
	if err := m.exitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("node 1 exited with %v, not by its crash point's SIGKILL", err)
	}

	c.restart(1)
	var after string
	eventually(t, 30*time.Second, "a write sealed under version 1 after the crash", func() error {
		after = putRecord(t, m, "after", "written under version 1")
		if v := sealedVersion(t, m, after); v != 1 {
			return fmt.Errorf("the write names version %d", v)
		}
		return nil
	})
	want["after"] = "written under version 1"
	readsBack(t, m, "both values after the crash", want)
	var later map[string][]byte
	if err := json.Unmarshal(unsealed(t, m.dataDir, "ledger_secrets_later.sealed"), &later); err != nil || len(later) != 1 || len(later["1"]) != 32 {
		t.Fatalf("the node keeps versions %v (%v); want exactly version 1", slices.Collect(maps.Keys(later)), err)
	}
	// Restarted again, it reads both from what it keeps.
	c.stop(1)
	c.restart(1)
	readsBack(t, m, "both values after a plain restart", want)
}
