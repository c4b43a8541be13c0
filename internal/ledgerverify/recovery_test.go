package ledgerverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/log"
	gocose "github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// chain builds a ledger whose service identity may change at recoveries.
type chain struct {
	t      *testing.T
	recs   [][]byte
	hashes map[int64]tlog.Hash
	id     *serviceID
}

type serviceID struct {
	key     *ecdsa.PrivateKey
	certDER []byte
	cose    cose.Key
	signer  note.Signer
	verKey  string
}

func newServiceID(t *testing.T) *serviceID {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Charter Service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := cose.NewKey(&k.PublicKey)
	sk, vk, _ := note.GenerateKey(rand.Reader, "charter:chain")
	s, _ := note.NewSigner(sk)
	return &serviceID{key: k, certDER: der, cose: ck, signer: s, verKey: vk}
}

func newChain(t *testing.T) *chain {
	c := &chain{t: t, hashes: map[int64]tlog.Hash{}, id: newServiceID(t)}
	g, _ := (&genesis.Genesis{Issuer: "charter:chain", ServiceCert: c.id.certDER, NoteVerifierKey: c.id.verKey, CreatedAt: 1}).Marshal()
	c.add(log.TxGenesis, g)
	return c
}

func (c *chain) read(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		out[i] = c.hashes[x]
	}
	return out, nil
}

func (c *chain) add(typ log.TxType, body []byte) {
	seqno := int64(len(c.recs))
	rec := &log.Record{Type: typ, View: 1, Seqno: uint64(seqno + 1), Body: body}
	rec.Entry = log.ComputeEntry(typ, rec.View, rec.Seqno, body)
	hs, err := tlog.StoredHashesForRecordHash(seqno, tlog.RecordHash(rec.Entry[:]), tlog.HashReaderFunc(c.read))
	if err != nil {
		c.t.Fatal(err)
	}
	for i, h := range hs {
		c.hashes[tlog.StoredHashIndex(0, seqno)+int64(i)] = h
	}
	raw, _ := log.MarshalRecord(rec)
	c.recs = append(c.recs, raw)
}

func (c *chain) writes(n int) {
	for i := range n {
		ws, _ := log.MarshalWriteSet(&log.WriteSet{Writes: []log.Write{{Map: "public:x", Key: []byte{byte(i)}, Value: []byte("v")}}, Claims: []byte("test")})
		c.add(log.TxWrites, ws)
	}
}

// checkpoint signs the tree so far with the identity signer.
func (c *chain) checkpoint(signer *serviceID) {
	size := uint64(len(c.recs))
	root, err := tlog.TreeHash(int64(size), tlog.HashReaderFunc(c.read))
	if err != nil {
		c.t.Fatal(err)
	}
	prot, sig, err := cose.SignTreeHead(rand.Reader, signer.key, gocose.AlgorithmES256, signer.cose.Kid, cose.ReceiptClaims{Issuer: "charter:chain", TreeSize: size}, root[:])
	if err != nil {
		c.t.Fatal(err)
	}
	nt, _ := log.SignCheckpointNote("charter:chain", size, root, signer.signer)
	body, _ := log.MarshalCheckpoint(&log.Checkpoint{TreeSize: size, Root: root, Protected: prot, Signature: sig, Note: nt})
	c.add(log.TxCheckpoint, body)
}

// recover appends a recovery to next, endorsed by endorser's key over
// previous (the current identity's certificate unless set).
func (c *chain) recover(next, endorser *serviceID, previous []byte) {
	if previous == nil {
		previous = c.id.certDER
	}
	e, err := cose.SignEndorsement(rand.Reader, endorser.key, endorser.cose, previous)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := log.MarshalRecovery(&log.Recovery{PreviousServiceCert: previous, ServiceCert: next.certDER, NoteVerifierKey: next.verKey,
		Endorsement: e, PreviousSize: uint64(len(c.recs)), RecoveredAt: 2})
	c.add(log.TxRecovery, body)
	c.id = next
}

func (c *chain) verify(pinned []byte) (*Report, error) {
	v := New(pinned)
	for i, raw := range c.recs {
		if err := v.Add(uint64(i+1), raw); err != nil {
			return nil, err
		}
	}
	return v.Finish()
}

// Across two recoveries, each new identity endorsing the previous, the
// ledger verifies against any certificate of the chain; an endorsement
// by another key, one of another certificate, and a checkpoint signed
// by the replaced key after the recovery are each refused.
func TestVerifyAcrossRecoveries(t *testing.T) {
	c := newChain(t)
	first := c.id
	c.writes(5)
	c.checkpoint(c.id)
	second := newServiceID(t)
	c.recover(second, second, nil)
	c.writes(3)
	c.checkpoint(c.id)
	third := newServiceID(t)
	c.recover(third, third, nil)
	c.writes(2)
	c.checkpoint(c.id)
	for _, pin := range [][]byte{nil, first.certDER, second.certDER, third.certDER} {
		rep, err := c.verify(pin)
		if err != nil {
			t.Fatalf("pinned %x…: %v", pin[:min(len(pin), 4)], err)
		}
		if rep.Recoveries != 2 || string(rep.ServiceCert) != string(third.certDER) || rep.ServiceKeyID != string(third.cose.Kid) {
			t.Fatalf("report %+v", rep)
		}
	}
	if _, err := c.verify(newServiceID(t).certDER); !errors.Is(err, ErrGenesis) {
		t.Fatalf("pinned to another service: %v", err)
	}

	for _, bad := range []struct {
		name  string
		build func(c *chain)
		want  error
		says  string
	}{
		{"endorsed by another key", func(c *chain) {
			next := newServiceID(t)
			c.recover(next, newServiceID(t), nil)
		}, ErrRecovery, "endorsement"},
		{"another previous certificate", func(c *chain) {
			next := newServiceID(t)
			c.recover(next, next, newServiceID(t).certDER)
		}, ErrRecovery, "did not sign this ledger"},
		{"the replaced key signs after", func(c *chain) {
			old, next := c.id, newServiceID(t)
			c.recover(next, next, nil)
			c.writes(1)
			c.checkpoint(old)
		}, ErrCheckpoint, "not the service key's"},
	} {
		c := newChain(t)
		c.writes(2)
		c.checkpoint(c.id)
		bad.build(c)
		_, err := c.verify(nil)
		if !errors.Is(err, bad.want) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%s: %v, want %v saying %q", bad.name, err, bad.want, bad.says)
		}
	}
}
