package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/seal"
	"github.com/charterlog/charter/log"
)

// recordsLedger holds node records as public:ccf.gov.nodes.info does.
type recordsLedger struct{ recs map[uint64]join.NodeRecord }

func (l recordsLedger) GetKV(m string, key []byte) ([]byte, error) {
	return nil, errors.New("not read by identification")
}

func (l recordsLedger) ScanKV(m string, fn func(key, value []byte) error) error {
	if m != govwire.MapNodesInfo {
		return nil
	}
	for id, r := range l.recs {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := fn([]byte(strconv.FormatUint(id, 10)), v); err != nil {
			return err
		}
	}
	return nil
}

func (l recordsLedger) SubmitWrites(context.Context, *log.WriteSet) (log.TxID, error) {
	return log.TxID{}, errors.New("identification writes nothing")
}

func (l recordsLedger) WritesVersion() uint64 { return 1 }

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// nodeCert is a server certificate for key naming node id, issued by svc.
func nodeCert(t *testing.T, svc *identity.Identity, key *ecdsa.PrivateKey, id uint64) *x509.Certificate {
	t.Helper()
	der, err := identity.IssueNodeCert(svc, &key.PublicKey, id, "", true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIdentify: a peer is the node its key is recorded for, in its raft
// role; retired and removed nodes, unknown keys and certificates that name
// another node than their key's are refused; a node the ledger does not
// record yet passes only with a certificate the service key issued.
func TestIdentify(t *testing.T) {
	sealer, err := seal.New(seal.KindVirtual, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := identity.LoadOrCreate(t.TempDir(), "test", true, sealer)
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.LoadOrCreate(t.TempDir(), "other", true, sealer)
	if err != nil {
		t.Fatal(err)
	}
	k2, k3, k4, k5 := newKey(t), newKey(t), newKey(t), newKey(t)
	d := NewDirectory(DirectoryConfig{
		Ledger: recordsLedger{recs: map[uint64]join.NodeRecord{
			2: {Status: join.NodeTrusted, PublicKey: join.PublicKeyPEM(&k2.PublicKey)},
			3: {Status: join.NodeRetired, PublicKey: join.PublicKeyPEM(&k3.PublicKey)},
			4: {Status: join.NodeTrusted, PublicKey: join.PublicKeyPEM(&k4.PublicKey)},
		}},
		ServiceCert: svc.ServiceCert,
		NodeInfo: func(id uint64) (replication.NodeInfo, error) {
			switch id {
			case 2:
				return replication.NodeInfo{ID: id, Role: replication.RoleVoter}, nil
			case 4:
				return replication.NodeInfo{ID: id, Role: replication.RoleRemoved}, nil
			}
			return replication.NodeInfo{}, errors.New("not in raft's configuration")
		},
		Certificate: func() *tls.Certificate { return nil },
	})

	p, err := d.Identify(nodeCert(t, svc, k2, 2))
	if err != nil || p.ID != 2 || !p.Recorded || p.Role != replication.RoleVoter || !p.Sender().Voter {
		t.Errorf("node 2: %+v, %v; want the recorded voter", p, err)
	}
	p, err = d.Identify(nodeCert(t, svc, k5, 5))
	if err != nil || p.ID != 5 || p.Recorded {
		t.Errorf("unrecorded node 5 with a service-issued certificate: %+v, %v; want admitted, not recorded", p, err)
	}
	for name, leaf := range map[string]*x509.Certificate{
		"retired":                      nodeCert(t, svc, k3, 3),
		"removed from raft":            nodeCert(t, svc, k4, 4),
		"names another node":           nodeCert(t, svc, k2, 4),
		"unknown key, recorded id":     nodeCert(t, svc, k5, 2),
		"unknown key, another service": nodeCert(t, other, k5, 5),
	} {
		if p, err := d.Identify(leaf); !errors.Is(err, ErrNotPeer) {
			t.Errorf("%s: %+v, %v; want ErrNotPeer", name, p, err)
		}
	}

	// The client side: the server at a node's address must hold its key.
	state := func(c *x509.Certificate) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	}
	if err := d.verifyPeerServer(2, state(nodeCert(t, svc, k2, 2))); err != nil {
		t.Errorf("node 2 at its address: %v", err)
	}
	if err := d.verifyPeerServer(5, state(nodeCert(t, svc, k5, 5))); err != nil {
		t.Errorf("unrecorded node 5 at its address: %v", err)
	}
	for name, c := range map[string]struct {
		id   uint64
		leaf *x509.Certificate
	}{
		"another key at node 2's address": {2, nodeCert(t, svc, k5, 2)},
		"retired node 3":                  {3, nodeCert(t, svc, k3, 3)},
		"node 5's certificate for node 6": {6, nodeCert(t, svc, k5, 5)},
		"another service's node 5":        {5, nodeCert(t, other, k5, 5)},
	} {
		if err := d.verifyPeerServer(c.id, state(c.leaf)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := d.verifyPeerServer(2, tls.ConnectionState{}); err == nil {
		t.Error("a server with no certificate: accepted")
	}
}
