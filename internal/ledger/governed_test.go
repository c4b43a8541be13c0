package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// governedMaps are maps of each governed family (log.GovernedPrefixes),
// public and private forms.
var governedMaps = []string{
	"public:scitt.policy", "public:scitt.issuer_keys", "public:scitt.configuration",
	"public:ccf.gov.members.info", "public:ccf.gov.users.certs", "public:ccf.gov.app.bundle",
	"public:ccf.internal.x", "public:charter.nodes", "ccf.gov.x", "scitt.policy",
}

// TestApplyRefusesAppWritesToGovernedMaps plays a malicious leader: it
// puts into the raft log, unchecked, app transactions that write governed
// maps, each beside an app map write. Every node refuses each one whole
// when it applies it (no position, nothing written), and applies the
// honest transaction that follows.
func TestApplyRefusesAppWritesToGovernedMaps(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.Open(st, ledger.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var props []log.Proposal
	for _, m := range governedMaps {
		body, err := log.MarshalAppTx(&log.AppTx{Writes: []log.Write{
			{Map: "public:app.a", Key: []byte(m), Value: []byte("app")},
			{Map: m, Key: []byte("policy"), Value: []byte("export function apply() { return true; }")},
		}, Nonce: []byte(m)})
		if err != nil {
			t.Fatal(err)
		}
		props = append(props, log.Proposal{Type: log.TxApp, Body: body})
	}
	honest, err := log.MarshalAppTx(&log.AppTx{Writes: []log.Write{{Map: "public:app.a", Key: []byte("k"), Value: []byte("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	props = append(props, log.Proposal{Type: log.TxApp, Body: honest})
	data, err := log.MarshalBatch(&log.Batch{Proposals: props})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Apply([]ledger.Entry{{Index: 1, Term: 1, Data: data}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range governedMaps {
		if v, err := l.GetKV(m, []byte("policy")); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s written by an app transaction: %q %v", m, v, err)
		}
		if v, err := l.GetKV("public:app.a", []byte(m)); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("the app write beside %s applied: %q %v", m, v, err)
		}
	}
	if v, err := l.GetKV("public:app.a", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("honest app transaction: %q %v", v, err)
	}
	if s := l.State(); s.Size != 1 || s.LastContentSeqno != 1 {
		t.Fatalf("size %d, last content %d: want only the honest transaction", s.Size, s.LastContentSeqno)
	}
}

// TestSubmitAppRefusesGovernedMaps: the leader refuses such a transaction
// before proposing it, naming the map.
func TestSubmitAppRefusesGovernedMaps(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range governedMaps {
		_, err := n.l.SubmitApp(ctx, &log.AppTx{Writes: []log.Write{{Map: m, Key: []byte("k"), Value: []byte("v")}}})
		if !errors.Is(err, ledger.ErrGovernedMap) {
			t.Errorf("%s: %v, want ErrGovernedMap", m, err)
		}
		if _, err := n.l.GetKV(m, []byte("k")); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s written: %v", m, err)
		}
	}
	// Governance's write sets still write its maps.
	if _, err := n.l.SubmitWrites(ctx, &log.WriteSet{Writes: []log.Write{{Map: "public:scitt.policy", Key: []byte("policy"), Value: []byte("js")}}}); err != nil {
		t.Fatalf("governance write set: %v", err)
	}
}
