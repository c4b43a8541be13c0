package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
)

// TestRecover: a three-node network with registrations loses every node;
// `charterd recover` starts a new network from one node's ledger files
// (copied; every data directory deleted) under a new service identity that
// endorses the previous one. It is Recovering (registrations refused 503)
// until the member opens it with CCF's previous_service_identity and
// next_service_identity (wrong ones fail); then receipts issued before
// the recovery verify with the keys fetched after it, new registrations
// work, and `charter ledger verify` follows the endorsement across the
// recovery. Tampered files, another network's files, an empty directory
// and a non-empty data directory are each refused and write nothing.
func TestRecover(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{LedgerChunkTransactions: 10})
	pub := newPublisher(t, "e2e recover publisher")
	var before []*outcome
	for i := range 12 {
		before = append(before, c.mustRegister(pub.unique(t), 1+i%3))
	}
	c.waitSettled(30*time.Second, 1, 2, 3)
	for i := 1; i <= 3; i++ {
		c.kill9(i)
	}
	files := t.TempDir()
	copyDir(t, filepath.Join(c.node(3).dataDir, "ledger"), files)
	for i := 1; i <= 3; i++ {
		if err := os.RemoveAll(c.node(i).dataDir); err != nil {
			t.Fatal(err)
		}
	}
	oldCert := mustRead(t, c.certPath)

	dir := t.TempDir()
	port := freeLoopbackPorts(t, 1)[0]
	cfg := config.Config{NodeID: 1, DataDir: filepath.Join(dir, "data"), Addr: "127.0.0.1:" + strconv.Itoa(port), LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}

	// Bad inputs first: each refused with its reason, nothing written.
	refused := func(what, ledgerDir, prevCert, says string) {
		t.Helper()
		out, err := exec.Command(charterd, "recover", "--config", cfgPath, "--ledger", ledgerDir, "--previous-service-cert", prevCert).CombinedOutput()
		if err == nil || !strings.Contains(string(out), says) {
			t.Fatalf("recover from %s: %v, want a refusal saying %q:\n%s", what, err, says, out)
		}
		if ents, _ := os.ReadDir(cfg.DataDir); len(ents) != 0 {
			t.Fatalf("recover from %s left %d files in the data directory", what, len(ents))
		}
	}
	other := filepath.Join(dir, "other.pem")
	writePEMCert(t, other, newPublisher(t, "another service").chain[0])
	refused("another network's files", files, other, "another network's ledger")
	refused("an empty directory", t.TempDir(), c.certPath, "no ledger")
	tampered := t.TempDir()
	copyDir(t, files, tampered)
	b := mustRead(t, filepath.Join(tampered, "ledger_11-20.committed"))
	b[len(b)/2] ^= 0x10
	os.WriteFile(filepath.Join(tampered, "ledger_11-20.committed"), b, 0o644)
	refused("tampered files", tampered, c.certPath, "do not verify")

	n := runCharterd(t, cfg.DataDir, filepath.Join(dir, "recovered.log"), "recover", "--config", cfgPath, "--ledger", files, "--previous-service-cert", c.certPath)
	newCert := mustRead(t, n.CertPath)
	if string(newCert) == string(oldCert) {
		t.Fatal("the recovered service kept the previous service certificate")
	}
	var nw struct {
		Status       string `json:"service_status"`
		Endorsements []struct {
			Previous    string `json:"previous_service_identity"`
			Next        string `json:"service_identity"`
			Endorsement string `json:"endorsement"`
		} `json:"service_identity_endorsements"`
	}
	network := func() {
		t.Helper()
		if err := json.Unmarshal(n.get(t, "/node/network").Body, &nw); err != nil {
			t.Fatal(err)
		}
	}
	network()
	if nw.Status != "Recovering" || len(nw.Endorsements) != 1 || nw.Endorsements[0].Previous != string(oldCert) || nw.Endorsements[0].Next != string(newCert) {
		t.Fatalf("/node/network after recovery: %+v", nw)
	}
	if r, _ := postStatement(t, n, pub.unique(t)); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "ServiceRecovering") {
		t.Fatalf("a registration while Recovering: %d %s", r.Status, r.Body)
	}
	if r, err := n.do(http.MethodPost, "/entries/batch", "application/cbor", batchOf(t, pub.unique(t))); err != nil || r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "ServiceRecovering") {
		t.Fatalf("a batch registration while Recovering: %v %+v", err, r)
	}
	// A re-run over the recovered data directory is refused.
	if out, err := exec.Command(charterd, "recover", "--config", cfgPath, "--ledger", files, "--previous-service-cert", c.certPath).CombinedOutput(); err == nil {
		t.Fatalf("a second recover into the same data directory: %s", out)
	}

	// The member of the lost network opens it: CCF's arguments, checked.
	m0 := &govMember{Name: "member0", KeyPath: filepath.Join(c.dir, "member0_privk.pem"), CertPath: filepath.Join(c.dir, "member0_cert.pem")}
	open := func(prev, next []byte) proposalOut {
		args, _ := json.Marshal(map[string]string{"previous_service_identity": string(prev), "next_service_identity": string(next)})
		p := govJSON(t, n, m0, "propose", "--action", "transition_service_to_open", "--args", string(args))
		return govJSON(t, n, m0, "vote", p.ProposalID, "--accept")
	}
	if v := open(newCert, newCert); v.State == "Accepted" {
		t.Fatal("transition_service_to_open with the wrong previous identity was accepted")
	}
	if v := open(oldCert, oldCert); v.State == "Accepted" {
		t.Fatal("transition_service_to_open with the wrong next identity was accepted")
	}
	if network(); nw.Status != "Recovering" {
		t.Fatalf("after refused openings the service is %s", nw.Status)
	}
	wantState(t, "opening the recovered service", open(oldCert, newCert), "Accepted")
	if network(); nw.Status != "Open" {
		t.Fatalf("after transition_service_to_open the service is %s", nw.Status)
	}

	// Receipts issued before verify with the keys published after.
	keys := n.keys(t)
	if len(keys) != 2 {
		t.Fatalf("/.well-known/scitt-keys holds %d keys, want the new and the endorsed previous", len(keys))
	}
	// `charter keys` checks that the previous key is endorsed, through the
	// recovery, by the certificate it pins.
	keysPath := filepath.Join(dir, "keys.cbor")
	if out, err := runCLI(t, dir, "keys", "--url", n.URL, "--cacert", n.CertPath, "--out", keysPath); err != nil || !strings.Contains(out, "1 previous service identit(ies), each endorsed by its successor: ok") {
		t.Fatalf("charter keys after the recovery: %v\n%s", err, out)
	}
	for i, o := range before {
		ts, err := cose.AttachReceipts(o.Statement, o.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("before%d.cose", i))
		os.WriteFile(p, ts, 0o644)
		if out, err := runCLI(t, dir, "verify", "--service-keys", keysPath, p); err != nil {
			t.Fatalf("charter verify of receipt %d issued before the recovery: %v\n%s", i, err, out)
		}
	}
	// New registrations work, under the new key.
	r := n.mustRegister(t, pub.unique(t))
	ts, err := cose.AttachReceipts(r.Statement, r.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "after.cose"), ts, 0o644)
	if out, err := runCLI(t, dir, "verify", "--service-keys", keysPath, filepath.Join(dir, "after.cose")); err != nil {
		t.Fatalf("charter verify of a receipt issued after the recovery: %v\n%s", err, out)
	}

	// The new network's ledger files continue the old ones, across the
	// endorsement, and verify against the new certificate.
	n.Stop()
	out, err := runCLI(t, dir, "ledger", "verify", "--quiet", "--service-cert", n.CertPath, filepath.Join(cfg.DataDir, "ledger"))
	if err != nil || !strings.Contains(out, "1 recovery") {
		t.Fatalf("charter ledger verify of the recovered ledger: %v\n%s", err, out)
	}
	t.Logf("charter ledger verify:\n%s", out)
}

func writePEMCert(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
