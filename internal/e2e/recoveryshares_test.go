package e2e

import (
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/recovery"
)

// encryptionKey makes a member's RSA encryption key: the private key as a
// PKCS #1 or PKCS #8 file, and the public key PEM set_member records.
func encryptionKey(t *testing.T, dir, name string, pkcs8 bool) (privPath, pubPEM string, priv *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	blk := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	if pkcs8 {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		blk = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	privPath = filepath.Join(dir, name+"_enc_privk.pem")
	if err := os.WriteFile(privPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return privPath, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), k
}

// pass proposes action with args as proposer and has each voter accept
// until it passes.
func pass(t *testing.T, n *node, proposer *govMember, voters []*govMember, action string, args any) {
	t.Helper()
	ab, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	p := govJSON(t, n, proposer, "propose", "--action", action, "--args", string(ab))
	for _, v := range voters {
		if p.State == "Accepted" {
			break
		}
		p = govJSON(t, n, v, "vote", p.ProposalID, "--accept")
	}
	wantState(t, action, p, "Accepted")
}

type sharingView struct {
	Threshold           int      `json:"threshold"`
	Commitment          []byte   `json:"commitment"`
	Members             []string `json:"members"`
	LedgerSecretVersion uint64   `json:"ledgerSecretVersion"`
	Basis               string   `json:"basis"`
}

func (n *node) sharing() (*sharingView, error) {
	r, err := n.do(http.MethodGet, "/gov/recovery/sharing", "", nil)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /gov/recovery/sharing: %d %s", r.Status, describeProblem(r))
	}
	var s sharingView
	return &s, json.Unmarshal(r.Body, &s)
}

// waitSharing waits for a sharing that want accepts.
func (n *node) waitSharing(t *testing.T, what string, want func(*sharingView) error) *sharingView {
	t.Helper()
	var got *sharingView
	eventually(t, 20*time.Second, what, func() error {
		s, err := n.sharing()
		if err != nil {
			return err
		}
		if err := want(s); err != nil {
			return err
		}
		got = s
		return nil
	})
	return got
}

// shareOut is what `charter gov recovery-share` prints.
type shareOut struct {
	MemberID            string `json:"memberId"`
	Verified            bool   `json:"verified"`
	Threshold           int    `json:"threshold"`
	LedgerSecretVersion uint64 `json:"ledgerSecretVersion"`
	Basis               string `json:"basis"`
	Share               string `json:"share"`
	Out                 string `json:"out"`
}

func recoveryShareCLI(t *testing.T, n *node, m *govMember, encKey string, extra ...string) (shareOut, error) {
	t.Helper()
	out, err := govCLI(t, n, m, "recovery-share", append([]string{"--encryption-key", encKey}, extra...)...)
	var s shareOut
	if err != nil {
		return s, fmt.Errorf("%v: %s", err, out)
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// TestRecoveryShares drives the recovery sharing through governance on a
// real node: members with encryption keys and a threshold get shares that
// `charter gov recovery-share` fetches, decrypts (PKCS #1 and PKCS #8 keys)
// and checks against the ledger's commitment; a new recovery member, a
// threshold change and a ledger rekey each make a new sharing; a member
// without a share, a malformed id and a key that is not the member's get
// their own errors.
func TestRecoveryShares(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m1 := newGovMember(t, dir, "m1", elliptic.P256())
	m2 := newGovMember(t, dir, "m2", elliptic.P256())
	n := startMembersNode(t, dir, []*govMember{m1})
	if out, err := govCLI(t, n, m1, "ack"); err != nil {
		t.Fatalf("ack: %v\n%s", err, out)
	}
	enc1, pub1, _ := encryptionKey(t, dir, "m1", false)
	enc2, pub2, _ := encryptionKey(t, dir, "m2", true)
	m1PEM, _ := os.ReadFile(m1.CertPath)
	m2PEM, _ := os.ReadFile(m2.CertPath)

	// No threshold yet: no sharing, and the endpoints say so.
	pass(t, n, m1, []*govMember{m1}, "set_member", map[string]string{"cert": string(m1PEM), "encryption_pub_key": pub1})
	if r := n.get(t, "/gov/recovery/sharing"); r.Status != http.StatusNotFound || !strings.Contains(describeProblem(r), "NoRecoverySharing") {
		t.Fatalf("sharing before a threshold: %d %s", r.Status, describeProblem(r))
	}
	if _, err := recoveryShareCLI(t, n, m1, enc1); err == nil || !strings.Contains(err.Error(), "commitment") {
		t.Fatalf("recovery-share before a sharing: %v; want the commitment cannot be read", err)
	}

	pass(t, n, m1, []*govMember{m1}, "set_recovery_threshold", map[string]int{"recovery_threshold": 1})
	first := n.waitSharing(t, "a sharing for m1", func(s *sharingView) error {
		if s.Threshold != 1 || len(s.Members) != 1 || s.Members[0] != m1.ID {
			return fmt.Errorf("sharing %+v", s)
		}
		return nil
	})
	got, err := recoveryShareCLI(t, n, m1, enc1)
	if err != nil {
		t.Fatal(err)
	}
	share, _ := base64.StdEncoding.DecodeString(got.Share)
	if !got.Verified || got.MemberID != m1.ID || got.Basis != first.Basis || len(share) != recovery.ShareSize {
		t.Fatalf("recovery-share: %+v", got)
	}
	sh := &recovery.Sharing{Threshold: first.Threshold, Commitment: first.Commitment}
	if err := sh.Verify(share); err != nil {
		t.Fatalf("the printed share does not verify: %v", err)
	}

	// Anyone may fetch a share (it is encrypted): the CCF 7 and classic
	// shapes, without a client certificate.
	r := n.get(t, "/gov/recovery/encrypted-shares/"+m1.ID)
	var ccf7 struct {
		MemberID       string `json:"memberId"`
		EncryptedShare []byte `json:"encryptedShare"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ccf7) != nil || ccf7.MemberID != m1.ID || len(ccf7.EncryptedShare) != 256 {
		t.Fatalf("GET encrypted-shares: %d %s", r.Status, r.Body)
	}
	r = n.get(t, "/gov/encrypted_recovery_share/"+m1.ID)
	var classic struct {
		EncryptedShare []byte `json:"encrypted_share"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &classic) != nil || !bytes.Equal(classic.EncryptedShare, ccf7.EncryptedShare) {
		t.Fatalf("GET encrypted_recovery_share: %d %s", r.Status, r.Body)
	}
	// m2 is no member yet: 404, in each route's error shape; a malformed
	// id is 400.
	if r := n.get(t, "/gov/recovery/encrypted-shares/"+m2.ID); r.Status != http.StatusNotFound || !strings.Contains(describeProblem(r), "NotRecoveryMember") {
		t.Fatalf("share of a non-member: %d %s", r.Status, describeProblem(r))
	}
	var ccfErr struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if r := n.get(t, "/gov/encrypted_recovery_share/"+m2.ID); r.Status != http.StatusNotFound || json.Unmarshal(r.Body, &ccfErr) != nil || ccfErr.Error.Code != "NotRecoveryMember" {
		t.Fatalf("classic share of a non-member: %d %s", r.Status, r.Body)
	}
	if r := n.get(t, "/gov/recovery/encrypted-shares/NOTHEX"); r.Status != http.StatusBadRequest || !strings.Contains(describeProblem(r), "InvalidMemberId") {
		t.Fatalf("malformed member id: %d %s", r.Status, describeProblem(r))
	}
	// Another member's key does not decrypt m1's share.
	if _, err := recoveryShareCLI(t, n, m1, enc2); err == nil || !strings.Contains(err.Error(), "not for this key") {
		t.Fatalf("recovery-share with another key: %v", err)
	}

	// A new recovery member (active once it acks) makes a new sharing.
	pass(t, n, m1, []*govMember{m1}, "set_member", map[string]string{"cert": string(m2PEM), "encryption_pub_key": pub2})
	if out, err := govCLI(t, n, m2, "ack"); err != nil {
		t.Fatalf("ack m2: %v\n%s", err, out)
	}
	second := n.waitSharing(t, "a sharing for m1 and m2", func(s *sharingView) error {
		if len(s.Members) != 2 {
			return fmt.Errorf("sharing among %v", s.Members)
		}
		return nil
	})
	if bytes.Equal(second.Commitment, first.Commitment) {
		t.Fatal("a new recovery member made no new key")
	}
	outFile := filepath.Join(dir, "m2.share")
	got, err = recoveryShareCLI(t, n, m2, enc2, "--out", outFile)
	if err != nil || !got.Verified || got.Share != "" || got.Out != outFile {
		t.Fatalf("recovery-share --out: %+v %v", got, err)
	}
	if b, err := os.ReadFile(outFile); err != nil || (&recovery.Sharing{Threshold: second.Threshold, Commitment: second.Commitment}).Verify(b) != nil {
		t.Fatalf("the share written to --out does not verify: %v", err)
	}

	// A threshold change makes a new sharing.
	pass(t, n, m1, []*govMember{m1, m2}, "set_recovery_threshold", map[string]int{"recovery_threshold": 2})
	n.waitSharing(t, "a sharing of threshold 2", func(s *sharingView) error {
		if s.Threshold != 2 || len(s.Members) != 2 {
			return fmt.Errorf("sharing %+v", s)
		}
		return nil
	})

	// A rekey makes ledger secret version 1, and a sharing of it.
	pass(t, n, m1, []*govMember{m1, m2}, "trigger_ledger_rekey", map[string]any{})
	n.waitSharing(t, "a sharing of ledger secret version 1", func(s *sharingView) error {
		if s.LedgerSecretVersion != 1 {
			return fmt.Errorf("sharing of version %d", s.LedgerSecretVersion)
		}
		return nil
	})
	for _, m := range []struct {
		m   *govMember
		key string
	}{{m1, enc1}, {m2, enc2}} {
		if got, err := recoveryShareCLI(t, n, m.m, m.key); err != nil || got.LedgerSecretVersion != 1 || got.Threshold != 2 {
			t.Fatalf("recovery-share of %s after the rekey: %+v %v", m.m.Name, got, err)
		}
	}
}
