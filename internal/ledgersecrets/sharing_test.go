package ledgersecrets

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/log"
)

// memKV is applied state in memory.
type memKV map[string]map[string][]byte

func (m memKV) GetKV(name string, key []byte) ([]byte, error) {
	if v, ok := m[name][string(key)]; ok {
		return v, nil
	}
	return nil, log.ErrNotFound
}

func (m memKV) ScanKV(name string, fn func(k, v []byte) error) error {
	for _, k := range slices.Sorted(maps.Keys(m[name])) {
		if err := fn([]byte(k), m[name][k]); err != nil {
			return err
		}
	}
	return nil
}

func (m memKV) set(name, key string, v []byte) {
	if m[name] == nil {
		m[name] = map[string][]byte{}
	}
	m[name][key] = v
}

func (m memKV) apply(ws *log.WriteSet) {
	for _, w := range ws.Writes {
		if w.Delete {
			delete(m[w.Map], string(w.Key))
			continue
		}
		m.set(w.Map, string(w.Key), w.Value)
	}
}

type testRecoveryMember struct {
	id   string
	priv *rsa.PrivateKey
}

func addRecoveryMember(t *testing.T, kv memKV, id string) testRecoveryMember {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	kv.set(govwire.MapMemberInfo, id, []byte(`{"status":"Active"}`))
	kv.set(govwire.MapMemberEncKeys, id, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return testRecoveryMember{id, k}
}

// sharer runs the primary's planning against kv and applies what it
// writes, as the ledger would.
type planHarness struct {
	t       *testing.T
	kv      memKV
	secrets map[uint64][]byte
}

func (h *planHarness) step() *recoveryPlan {
	h.t.Helper()
	st, err := readRecoveryState(h.kv)
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := planRecovery(st, func(v uint64) ([]byte, error) {
		if s, ok := h.secrets[v]; ok {
			return s, nil
		}
		return nil, fmt.Errorf("no version %d", v)
	}, rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	if p.newSecret != nil {
		h.secrets[p.newVersion] = p.newSecret
	}
	if p.ws != nil {
		if err := p.ws.Validate(); err != nil {
			h.t.Fatal(err)
		}
		for _, w := range p.ws.Writes {
			if !log.IsGoverned(w.Map) || log.IsNodeMaintained(w.Map) {
				h.t.Fatalf("the plan writes %s, which a write set may not", w.Map)
			}
		}
		h.kv.apply(p.ws)
	}
	return p
}

// sharing checks the recorded sharing: one share per recovery member, each
// verifying against the commitment, and any threshold of them unwrapping
// the latest ledger secret.
func (h *planHarness) checkSharing(members []testRecoveryMember, threshold int) *recovery.SharingRecord {
	h.t.Helper()
	var rec recovery.SharingRecord
	if err := json.Unmarshal(h.kv[recovery.MapSharing][recovery.KeySharing], &rec); err != nil {
		h.t.Fatal(err)
	}
	if rec.Threshold != threshold || len(rec.Members) != len(members) {
		h.t.Fatalf("sharing of %d among %v, want %d among %d", rec.Threshold, rec.Members, threshold, len(members))
	}
	if len(h.kv[recovery.MapShares]) != len(members) {
		h.t.Fatalf("%d shares recorded, want %d", len(h.kv[recovery.MapShares]), len(members))
	}
	var shares [][]byte
	for _, m := range members {
		var sr recovery.ShareRecord
		if err := json.Unmarshal(h.kv[recovery.MapShares][m.id], &sr); err != nil {
			h.t.Fatalf("member %s: %v", m.id, err)
		}
		share, err := recovery.DecryptShare(m.priv, sr.EncryptedShare)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := rec.Sharing().Verify(share); err != nil {
			h.t.Fatalf("member %s's share: %v", m.id, err)
		}
		shares = append(shares, share)
	}
	key, err := rec.Sharing().Combine(shares[:threshold])
	if err != nil {
		h.t.Fatal(err)
	}
	got, err := key.Unwrap(rec.WrappedLedgerSecret, recovery.Label(rec.LedgerSecretVersion))
	if err != nil || !bytes.Equal(got, h.secrets[rec.LedgerSecretVersion]) {
		h.t.Fatalf("the shares do not unwrap ledger secret %d: %v", rec.LedgerSecretVersion, err)
	}
	return &rec
}

// TestRecoverySharing: a new recovery member, a removed member and a
// threshold change each make a new sharing whose shares verify; nothing
// changed makes none; a threshold above the recovery members makes none,
// and says why.
func TestRecoverySharing(t *testing.T) {
	h := &planHarness{t: t, kv: memKV{}, secrets: map[uint64][]byte{0: bytes.Repeat([]byte{7}, 32)}}
	a := addRecoveryMember(t, h.kv, "aa")
	b := addRecoveryMember(t, h.kv, "bb")
	// A member without an encryption key, one with a key that is not RSA:
	// neither is a recovery member.
	h.kv.set(govwire.MapMemberInfo, "cc", []byte(`{"status":"Active"}`))
	h.kv.set(govwire.MapMemberInfo, "dd", []byte(`{"status":"Active"}`))
	h.kv.set(govwire.MapMemberEncKeys, "dd", []byte("not a key"))

	if p := h.step(); p.ws != nil || p.skip != skipNoThreshold {
		t.Fatalf("no threshold: wrote %v, skip %q", p.ws != nil, p.skip)
	}
	h.kv.set(govwire.MapRecovery, "threshold", []byte("2"))
	if p := h.step(); p.ws == nil {
		t.Fatal("no sharing made")
	}
	first := h.checkSharing([]testRecoveryMember{a, b}, 2)
	if p := h.step(); p.ws != nil {
		t.Fatal("a second sharing with nothing changed")
	}

	c := addRecoveryMember(t, h.kv, "ee")
	h.step()
	second := h.checkSharing([]testRecoveryMember{a, b, c}, 2)
	if bytes.Equal(first.Commitment, second.Commitment) {
		t.Fatal("a new recovery member did not make a new key")
	}

	delete(h.kv[govwire.MapMemberInfo], "bb")
	delete(h.kv[govwire.MapMemberEncKeys], "bb")
	h.step()
	h.checkSharing([]testRecoveryMember{a, c}, 2)
	if _, ok := h.kv[recovery.MapShares]["bb"]; ok {
		t.Fatal("a removed member's share stayed")
	}

	h.kv.set(govwire.MapRecovery, "threshold", []byte("1"))
	h.step()
	third := h.checkSharing([]testRecoveryMember{a, c}, 1)

	h.kv.set(govwire.MapRecovery, "threshold", []byte("3"))
	if p := h.step(); p.ws != nil || p.skip != skipTooFewMembers {
		t.Fatalf("threshold above the members: wrote %v, skip %q", p.ws != nil, p.skip)
	}
	// The previous sharing stays.
	if got := h.checkSharing([]testRecoveryMember{a, c}, 1); !bytes.Equal(got.Commitment, third.Commitment) {
		t.Fatal("the previous sharing changed")
	}
	// A recovered service waiting for its members' shares keeps the
	// previous network's sharing, whatever changed.
	h.kv.set(govwire.MapRecovery, "threshold", []byte("2"))
	h.kv.set(govwire.MapServiceInfo, govwire.KeyService, []byte(`{"status":"WaitingForRecoveryShares"}`))
	if p := h.step(); p.ws != nil || p.skip != skipRecovering {
		t.Fatalf("recovering: wrote %v, skip %q", p.ws != nil, p.skip)
	}
}

func addTrustedNode(t *testing.T, kv memKV, id uint64) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	rec, _ := json.Marshal(join.NodeRecord{Status: join.NodeTrusted, PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	kv.set(govwire.MapNodesInfo, strconv.FormatUint(id, 10), rec)
	priv, err := k.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestRekeyPlan: a rekey request makes version 1, sealed to every trusted
// node, wrapping version 0, and a new sharing of version 1; a node trusted
// later gets its copy; a second request makes version 2.
func TestRekeyPlan(t *testing.T) {
	h := &planHarness{t: t, kv: memKV{}, secrets: map[uint64][]byte{0: bytes.Repeat([]byte{7}, 32)}}
	a := addRecoveryMember(t, h.kv, "aa")
	h.kv.set(govwire.MapRecovery, "threshold", []byte("1"))
	n1 := addTrustedNode(t, h.kv, 1)
	h.step()
	if len(h.kv[recovery.MapNodeSecrets]) != 0 {
		t.Fatal("copies of version 0 written: joining nodes receive it")
	}
	h.kv.set(recovery.MapRekey, recovery.KeyRekeyRequested, []byte("1"))
	p := h.step()
	if p.newVersion != 1 {
		t.Fatalf("rekey made version %d", p.newVersion)
	}
	if p2 := h.step(); p2.ws != nil {
		t.Fatal("an answered rekey request made another version")
	}
	if rec := h.checkSharing([]testRecoveryMember{a}, 1); rec.LedgerSecretVersion != 1 {
		t.Fatalf("the sharing wraps version %d after the rekey", rec.LedgerSecretVersion)
	}
	openCopy := func(id uint64, priv *ecdh.PrivateKey) ([]byte, uint64) {
		var c recovery.NodeSecretRecord
		if err := json.Unmarshal(h.kv[recovery.MapNodeSecrets][strconv.FormatUint(id, 10)], &c); err != nil {
			t.Fatalf("node %d's copy: %v", id, err)
		}
		s, err := recovery.OpenForNode(priv, id, c.Version, c.Encrypted)
		if err != nil {
			t.Fatal(err)
		}
		return s, c.Version
	}
	if s, v := openCopy(1, n1); v != 1 || !bytes.Equal(s, h.secrets[1]) {
		t.Fatal("node 1's copy is not version 1")
	}
	n2 := addTrustedNode(t, h.kv, 2)
	if p := h.step(); p.ws == nil || p.newSecret != nil {
		t.Fatal("a node trusted later got no copy, or a new version was made")
	}
	if s, v := openCopy(2, n2); v != 1 || !bytes.Equal(s, h.secrets[1]) {
		t.Fatal("node 2's copy is not version 1")
	}
	// Node 1 under a new key (a recovered network's node under an old id)
	// gets a copy sealed to that key.
	n1 = addTrustedNode(t, h.kv, 1)
	if p := h.step(); p.ws == nil || p.newSecret != nil {
		t.Fatal("a node under a new key got no new copy")
	}
	if s, v := openCopy(1, n1); v != 1 || !bytes.Equal(s, h.secrets[1]) {
		t.Fatal("node 1's new copy is not version 1 under its new key")
	}
	h.kv.set(recovery.MapRekey, recovery.KeyRekeyRequested, []byte("2"))
	h.step()
	s2, v := openCopy(2, n2)
	var recs []recovery.SecretRecord
	for i := uint64(1); i <= v; i++ {
		var r recovery.SecretRecord
		if err := json.Unmarshal(h.kv[recovery.MapLedgerSecrets][strconv.FormatUint(i, 10)], &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	all, err := recovery.Unchain(s2, recs)
	if err != nil || len(all) != 3 {
		t.Fatalf("unchain: %d versions, %v", len(all), err)
	}
	for i, s := range all {
		if !bytes.Equal(s, h.secrets[uint64(i)]) {
			t.Fatalf("version %d differs", i)
		}
	}
	if rec := h.checkSharing([]testRecoveryMember{a}, 1); rec.LedgerSecretVersion != 2 {
		t.Fatalf("the sharing wraps version %d", rec.LedgerSecretVersion)
	}
}
