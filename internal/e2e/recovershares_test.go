package e2e

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/ledgerfiles"
)

// TestRecoverPrivateState is issue 17's scenario: a three-node network
// with three members (two of them recovery members, threshold 2),
// registrations, app transactions writing a private map and a ledger
// rekey loses every node (kill -9) and two data directories; a new node
// recovers from the third node's ledger files. Opened by its members, it
// waits for recovery shares: a share before the opening, from a member who
// is not a recovery member, a wrong share and a replayed share are each
// refused; one share alone does not open it; the second does, and the
// private values (both secret versions) read back through the app; every
// receipt issued before verifies with the keys published after; new
// registrations and app calls work.
func TestRecoverPrivateState(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{LedgerChunkTransactions: 10})
	n1 := c.node(1).node
	m0 := &govMember{Name: "member0", KeyPath: filepath.Join(c.dir, "member0_privk.pem"), CertPath: filepath.Join(c.dir, "member0_cert.pem")}
	module := `
export function write(request) {
  const [k, v] = request.body.text().split("=");
  ccf.kv["private:e2e.secret"].set(ccf.strToBuf(k), ccf.strToBuf(v));
  return { body: { ok: true } };
}
export function read(request) {
  const out = {};
  for (const k of ["before", "rekeyed", "after"]) {
    const v = ccf.kv["private:e2e.secret"].get(ccf.strToBuf(k));
    out[k] = v === undefined ? null : ccf.bufToStr(v);
  }
  return { body: out };
}`
	ep := func(fn, mode string) map[string]any {
		return map[string]any{"js_module": "endpoints/m.js", "js_function": fn, "authn_policies": []string{"no_auth"}, "forwarding_required": "always", "mode": mode}
	}
	bundle, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"endpoints": map[string]any{"/secret": map[string]any{"post": ep("write", "readwrite"), "get": ep("read", "readonly")}}},
		"modules":  []map[string]string{{"name": "endpoints/m.js", "module": module}},
	})
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bundlePath, bundle, 0o644)
	if out, err := runCLI(t, c.dir, "app", "deploy", "--bundle", bundlePath, "--url", n1.URL, "--cacert", c.certPath, "--member-key", m0.KeyPath, "--member-cert", m0.CertPath); err != nil {
		t.Fatalf("app deploy: %v\n%s", err, out)
	}
	appDo := func(n *node, method, body string) *response {
		t.Helper()
		r, err := n.do(method, "/app/secret", "text/plain", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := appDo(n1, http.MethodPost, "before=the consortium's secret"); r.Status != 200 {
		t.Fatalf("writing the private map: %d %s", r.Status, r.Body)
	}

	// Two recovery members, with RSA encryption keys; threshold 2.
	dir := t.TempDir()
	var recMembers []*govMember
	encKeys := map[string]string{} // member id → its RSA private key file
	for _, name := range []string{"r1", "r2"} {
		m := newGovMember(t, dir, name, elliptic.P256())
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		encKeys[m.ID] = filepath.Join(dir, name+"_enc_privk.pem")
		os.WriteFile(encKeys[m.ID], pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
		spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		govAcceptAs(t, n1, m0, "set_member", map[string]string{"cert": string(mustRead(t, m.CertPath)),
			"encryption_pub_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))})
		recMembers = append(recMembers, m)
	}
	// Acknowledged after both are added: member0 alone passes set_member.
	for _, m := range recMembers {
		if out, err := govCLI(t, n1, m, "ack"); err != nil {
			t.Fatalf("ack %s: %v\n%s", m.Name, err, out)
		}
	}
	// Three active members now: a proposal passes with two votes.
	pass := func(n *node, action string, args any) proposalOut {
		t.Helper()
		a, _ := json.Marshal(args)
		p := govJSON(t, n, m0, "propose", "--action", action, "--args", string(a))
		govJSON(t, n, m0, "vote", p.ProposalID, "--accept")
		return govJSON(t, n, recMembers[0], "vote", p.ProposalID, "--accept")
	}
	wantState(t, "set_recovery_threshold", pass(n1, "set_recovery_threshold", map[string]int{"recovery_threshold": 2}), "Accepted")
	// A rekey: later private writes use secret version 1, and the sharing
	// is remade for it.
	wantState(t, "trigger_ledger_rekey", pass(n1, "trigger_ledger_rekey", map[string]int{}), "Accepted")
	eventually(t, 20*time.Second, "the primary's recovery sharing of ledger secret version 1", func() error {
		var sh struct {
			Version uint64 `json:"ledgerSecretVersion"`
		}
		r := n1.get(t, "/gov/recovery/sharing")
		if r.Status != 200 || json.Unmarshal(r.Body, &sh) != nil || sh.Version != 1 {
			return fmt.Errorf("%d %s", r.Status, truncate(r.Body, 200))
		}
		return nil
	})
	if r := appDo(n1, http.MethodPost, "rekeyed=written under version 1"); r.Status != 200 {
		t.Fatalf("writing the private map after the rekey: %d %s", r.Status, r.Body)
	}
	pub := newPublisher(t, "e2e recover shares publisher")
	var before []*outcome
	for i := range 6 {
		before = append(before, c.mustRegister(pub.unique(t), 1+i%3))
	}
	settled := c.waitSettled(30*time.Second, 1, 2, 3)
	// Node 3's ledger files hold what the network settled on (the files
	// follow the committed ledger; kill -9 loses no write a process made).
	files := filepath.Join(c.node(3).dataDir, "ledger")
	eventually(t, 20*time.Second, "node 3's ledger files to reach the settled ledger", func() error {
		last, err := ledgerfiles.Scan(files, func(uint64, []byte) error { return nil })
		if err != nil || last < settled.LedgerSize {
			return fmt.Errorf("the files end at %d (%v); the ledger is %d", last, err, settled.LedgerSize)
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		c.kill9(i)
	}
	for i := 1; i <= 2; i++ {
		if err := os.RemoveAll(c.node(i).dataDir); err != nil {
			t.Fatal(err)
		}
	}

	cfg := config.Config{NodeID: 1, DataDir: filepath.Join(dir, "data"), Addr: "127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0]), LogLevel: "info"}
	cfgPath := filepath.Join(dir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	n := runCharterd(t, cfg.DataDir, filepath.Join(dir, "recovered.log"), "recover", "--config", cfgPath, "--ledger", files, "--previous-service-cert", c.certPath)
	newCert := mustRead(t, n.CertPath)
	// Each recovery member fetches its encrypted share from the recovered
	// service and decrypts it (`charter gov recovery-share`).
	shares := map[string][]byte{}
	for _, m := range recMembers {
		p := filepath.Join(dir, m.Name+".share")
		if out, err := govCLI(t, n, m, "recovery-share", "--encryption-key", encKeys[m.ID], "--out", p); err != nil {
			t.Fatalf("charter gov recovery-share as %s: %v\n%s", m.Name, err, out)
		}
		shares[m.ID] = mustRead(t, p)
	}
	shareFile := func(m *govMember, b []byte) string {
		p := filepath.Join(dir, m.ID+".submitted")
		os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
		return p
	}
	submit := func(m *govMember, b []byte) (string, error) {
		return govCLI(t, n, m, "submit-share", "--share", shareFile(m, b))
	}
	refused := func(what string, out string, err error, says string) {
		t.Helper()
		if err == nil || !strings.Contains(out, says) {
			t.Fatalf("%s: %v, want a refusal saying %q:\n%s", what, err, says, out)
		}
	}
	r1, r2 := recMembers[0], recMembers[1]
	out, err := submit(r1, shares[r1.ID])
	refused("a share before transition_service_to_open", out, err, "ServiceNotWaitingForRecoveryShares")

	wantState(t, "opening the recovered service", pass(n, "transition_service_to_open",
		map[string]string{"previous_service_identity": string(mustRead(t, c.certPath)), "next_service_identity": string(newCert)}), "Accepted")
	status := func() string {
		var nw struct {
			Status string `json:"service_status"`
		}
		json.Unmarshal(n.get(t, "/node/network").Body, &nw)
		return nw.Status
	}
	if s := status(); s != "WaitingForRecoveryShares" {
		t.Fatalf("after opening, a service with private maps is %s", s)
	}
	if r := appDo(n, http.MethodGet, ""); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "ServiceRecovering") {
		t.Fatalf("the app while waiting for shares: %d %s", r.Status, r.Body)
	}
	out, err = submit(m0, shares[r1.ID])
	refused("a share from a member who is not a recovery member", out, err, "NotRecoveryMember")
	wrong := append([]byte(nil), shares[r2.ID]...)
	wrong[40] ^= 1
	out, err = submit(r2, wrong)
	refused("a wrong share", out, err, "InvalidRecoveryShare")

	if out, err := submit(r1, shares[r1.ID]); err != nil || !strings.Contains(out, "1 of 2") {
		t.Fatalf("r1's share: %v\n%s", err, out)
	}
	if s := status(); s != "WaitingForRecoveryShares" {
		t.Fatalf("one share of two opened the service: %s", s)
	}
	out, err = submit(r1, shares[r1.ID])
	refused("a replayed share", out, err, "RecoveryShareAlreadySubmitted")
	out, err = submit(r2, shares[r1.ID])
	refused("another member's share", out, err, "RecoveryShareAlreadySubmitted")

	if out, err := submit(r2, shares[r2.ID]); err != nil || !strings.Contains(out, "the service is open") {
		t.Fatalf("r2's share: %v\n%s", err, out)
	}
	if s := status(); s != "Open" {
		t.Fatalf("after the threshold the service is %s", s)
	}
	if r := appDo(n, http.MethodGet, ""); r.Status != 200 || !strings.Contains(string(r.Body), "the consortium's secret") || !strings.Contains(string(r.Body), "written under version 1") {
		t.Fatalf("the private values (secret versions 0 and 1) through the app after recovery: %d %s", r.Status, r.Body)
	}
	if r := appDo(n, http.MethodPost, "after=written after recovery"); r.Status != 200 {
		t.Fatalf("an app write after recovery: %d %s", r.Status, r.Body)
	}
	if r := appDo(n, http.MethodGet, ""); !strings.Contains(string(r.Body), "written after recovery") {
		t.Fatalf("reading the new value: %d %s", r.Status, r.Body)
	}
	// Receipts issued before the recovery verify with the keys published
	// after it; so does one issued after.
	keysPath := filepath.Join(dir, "keys.cbor")
	if out, err := runCLI(t, dir, "keys", "--url", n.URL, "--cacert", n.CertPath, "--out", keysPath); err != nil {
		t.Fatalf("charter keys after the recovery: %v\n%s", err, out)
	}
	after := n.mustRegister(t, pub.unique(t))
	receipts := [][2][]byte{{after.Statement, after.Receipt}}
	for _, o := range before {
		receipts = append(receipts, [2][]byte{o.Statement, o.Receipt})
	}
	for i, sr := range receipts {
		ts, err := cose.AttachReceipts(sr[0], sr[1])
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("receipt%d.cose", i))
		os.WriteFile(p, ts, 0o644)
		if out, err := runCLI(t, dir, "verify", "--service-keys", keysPath, p); err != nil {
			t.Fatalf("charter verify of receipt %d: %v\n%s", i, err, out)
		}
	}
}
