package restore

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// recoveriesLedger holds only recoveries.
type recoveriesLedger struct{ recs []ledger.RecoveryAt }

func (l recoveriesLedger) GetKV(string, []byte) ([]byte, error) { return nil, log.ErrNotFound }
func (l recoveriesLedger) ScanKV(string, func(k, v []byte) error) error {
	return nil
}
func (l recoveriesLedger) SubmitWrites(context.Context, *log.WriteSet) (log.TxID, error) {
	return log.TxID{}, errors.New("read only")
}
func (l recoveriesLedger) State() ledger.State                      { return ledger.State{} }
func (l recoveriesLedger) Recoveries() ([]ledger.RecoveryAt, error) { return l.recs, nil }
func (l recoveriesLedger) SubmitRecovery(context.Context, *log.Recovery) (log.TxID, error) {
	return log.TxID{}, errors.New("read only")
}

func der(t *testing.T) []byte {
	t.Helper()
	c, err := identity.ParseCertPEM(testCertPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
}

// TestServiceKeys: the current key first, then each previous identity's,
// newest first, each once.
func TestServiceKeys(t *testing.T) {
	c0, c1, c2 := der(t), der(t), der(t)
	cur, err := x509.ParseCertificate(c2)
	if err != nil {
		t.Fatal(err)
	}
	recs := []ledger.RecoveryAt{
		{Seqno: 10, Recovery: &log.Recovery{PreviousServiceCert: c0, ServiceCert: c1}},
		{Seqno: 20, Recovery: &log.Recovery{PreviousServiceCert: c1, ServiceCert: c2}},
		// A recovery that kept its identity adds no key.
		{Seqno: 30, Recovery: &log.Recovery{PreviousServiceCert: c2, ServiceCert: c2}},
	}
	r := &Recorder{Identity: &identity.Identity{ServiceCert: cur}, Ledger: recoveriesLedger{recs}}
	keys, err := r.ServiceKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("%d keys, want 3", len(keys))
	}
	for i, d := range [][]byte{c2, c1, c0} {
		c, _ := x509.ParseCertificate(d)
		want, err := cose.NewKey(c.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(keys[i].Kid, want.Kid) {
			t.Errorf("key %d is not the expected identity's", i)
		}
	}
	// A damaged certificate in the ledger is an error, not a key less.
	recs[0].Recovery.PreviousServiceCert = []byte("junk")
	if _, err := r.ServiceKeys(); err == nil {
		t.Error("a damaged previous certificate was accepted")
	}
}
