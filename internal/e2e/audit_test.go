package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An auditor downloads the ledger of a running node and re-runs every
// registration's recorded policy offline.
func TestLedgerExportReplayPolicy(t *testing.T) {
	n := startNode(t, t.TempDir())
	pub := newPublisher(t, "audit publisher")
	n.mustRegister(t, pub.unique(t)) // before any policy
	setPolicy(t, n, `export function apply(phdr) { return phdr.cwt.sub !== "" ? true : "no subject"; }`)
	for range 3 {
		n.mustRegister(t, pub.unique(t))
	}
	out := filepath.Join(t.TempDir(), "ledger.cbor")
	b, err := exec.Command(charterCLI, "ledger", "export", "--url", n.URL, "--cacert", n.CertPath, "--out", out).CombinedOutput()
	if err != nil {
		t.Fatalf("charter ledger export: %v\n%s", err, b)
	}
	b, err = exec.Command(charterCLI, "ledger", "replay-policy", out).CombinedOutput()
	if err != nil {
		t.Fatalf("charter ledger replay-policy: %v\n%s", err, b)
	}
	// Three registrations ran under the policy; the first predates it.
	if !strings.Contains(string(b), "checked 3 registrations under 1 policy versions: 0 not accepted") ||
		!strings.Contains(string(b), "1 registrations were recorded without a policy") {
		t.Fatalf("replay-policy reported:\n%s", b)
	}
}
