package gov_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/log"
)

// A recovered service waiting for shares opens at the threshold, with the
// ledger secret the shares recover handed to the node; every bad share is
// refused with its own error and changes nothing; one share alone does
// not open it.
func TestSubmitRecoveryShare(t *testing.T) {
	var got [][]byte
	e := newEnvConfig(t, 3, gov.Config{RecoveredSecrets: func(s [][]byte) error { got = s; return nil }})
	for _, m := range e.m {
		e.activate(m)
	}
	// The lost service's sharing: members 0 and 1, threshold 2.
	secret := bytes.Repeat([]byte{7}, recovery.SecretSize)
	var keys []*rsa.PrivateKey
	var members []recovery.Member
	for _, m := range e.m[:2] {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		members = append(members, recovery.Member{ID: m.id, EncryptionKey: &k.PublicKey})
	}
	key := recovery.NewKey(rand.Reader)
	sh, err := recovery.Split(rand.Reader, key, 2, members)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := key.Wrap(secret, recovery.Label(0))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(recovery.SharingRecord{Threshold: 2, Commitment: sh.Commitment, Members: []string{members[0].ID, members[1].ID},
		WrappedLedgerSecret: wrapped, Basis: "b"})
	share := func(i int) []byte {
		s, err := recovery.DecryptShare(keys[i], sh.Encrypted[members[i].ID])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A share of another key, for the wrong-share case.
	otherSharing, _ := recovery.Split(rand.Reader, recovery.NewKey(rand.Reader), 2, members)
	wrong, _ := recovery.DecryptShare(keys[0], otherSharing.Encrypted[members[0].ID])

	write := func(m, k string, v []byte) {
		if _, err := e.l.SubmitWrites(context.Background(), &log.WriteSet{Writes: []log.Write{{Map: m, Key: []byte(k), Value: v}}, Claims: []byte("test")}); err != nil {
			t.Fatal(err)
		}
	}
	write(recovery.MapSharing, recovery.KeySharing, rec)
	e.setServiceInfo(govwire.ServiceInfo{Status: govwire.ServiceRecovering, PrivateStatePending: true})

	submit := func(i int, s []byte) (*gov.ShareResult, error) {
		payload, _ := json.Marshal(map[string]string{"share": base64.StdEncoding.EncodeToString(s)})
		return e.s.SubmitRecoveryShare(context.Background(), e.m[i].id, e.m[i].sign(t, govwire.MsgRecoveryShare, "", payload))
	}
	// refused checks err, and that the submission wrote nothing (before
	// is the newest content transaction before it).
	refused := func(what string, before uint64, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if e.l.State().LastContentSeqno != before {
			t.Fatalf("%s changed the ledger", what)
		}
	}
	last := func() uint64 { return e.l.State().LastContentSeqno }
	b := last()
	_, err = submit(0, share(0))
	refused("a share before transition_service_to_open", b, err, gov.ErrSharesNotExpected)

	e.setServiceInfo(govwire.ServiceInfo{Status: govwire.ServiceWaitingForShares, PrivateStatePending: true})
	b = last()
	_, err = submit(2, share(0))
	refused("a share from a member who is not a recovery member", b, err, gov.ErrNotRecoveryMember)
	_, err = submit(0, wrong)
	refused("a share of another key", b, err, gov.ErrWrongShare)
	payload, _ := json.Marshal(map[string]string{"share": "c2hvcnQ="})
	_, err = e.s.SubmitRecoveryShare(context.Background(), e.m[0].id, e.m[0].sign(t, govwire.MsgRecoveryShare, "", payload))
	refused("a malformed share", b, err, govwire.ErrMalformed)
	_, err = e.s.SubmitRecoveryShare(context.Background(), e.m[1].id, e.m[0].sign(t, govwire.MsgRecoveryShare, "", payload))
	refused("a request signed by another member", b, err, gov.ErrMismatch)

	res, err := submit(0, share(0))
	b = last()
	if err != nil || res.Opened || res.Submitted != 1 || res.Threshold != 2 {
		t.Fatalf("the first share: %+v, %v", res, err)
	}
	if s := e.s.ServiceStatus(); s != govwire.ServiceWaitingForShares || got != nil {
		t.Fatalf("one share of two: the service is %s, secrets %v", s, got)
	}
	_, err = submit(0, share(0))
	refused("the same member again", b, err, gov.ErrShareReplayed)
	_, err = submit(1, share(0))
	refused("another member's share", b, err, gov.ErrShareReplayed)

	res, err = submit(1, share(1))
	if err != nil || !res.Opened {
		t.Fatalf("the threshold share: %+v, %v", res, err)
	}
	if len(got) != 1 || !bytes.Equal(got[0], secret) {
		t.Fatalf("recovered secrets %x, want [%x]", got, secret)
	}
	if s := e.s.ServiceStatus(); s != govwire.ServiceOpen {
		t.Fatalf("after the threshold the service is %s", s)
	}
	// The transaction that opened it holds no share.
	r, err := e.l.Record(res.TxID.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if bytes.Contains(r.Body, share(i)) || bytes.Contains(r.Body, []byte(base64.StdEncoding.EncodeToString(share(i)))) {
			t.Fatal("a share is in the ledger")
		}
	}
	b = last()
	_, err = submit(0, share(0))
	refused("a share once open", b, err, gov.ErrSharesNotExpected)
}
