package join

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"golang.org/x/time/rate"
)

var errNotFound = errors.New("not found")

// fakeState is the committed state; SubmitWrites fails with fail, and
// then writes nothing.
type fakeState struct {
	maps   map[string]map[string][]byte
	claims [][]byte
	fail   error
}

func (s *fakeState) GetKV(m string, k []byte) ([]byte, error) {
	v, ok := s.maps[m][string(k)]
	if !ok {
		return nil, errNotFound
	}
	return v, nil
}

func (s *fakeState) ScanKV(m string, fn func(k, v []byte) error) error {
	keys := make([]string, 0, len(s.maps[m]))
	for k := range s.maps[m] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), s.maps[m][k]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeState) SubmitWrites(_ context.Context, ws *log.WriteSet) (log.TxID, error) {
	if s.fail != nil {
		return log.TxID{}, s.fail
	}
	for _, w := range ws.Writes {
		s.put(w.Map, string(w.Key), w.Value)
	}
	s.claims = append(s.claims, ws.Claims)
	return log.TxID{View: 1, Seqno: uint64(len(s.claims))}, nil
}

func (s *fakeState) put(m, k string, v []byte) {
	if s.maps[m] == nil {
		s.maps[m] = map[string][]byte{}
	}
	s.maps[m][k] = v
}

type fakeRaft struct {
	follower bool
	members  map[uint64]Member
}

func (r *fakeRaft) Leader() (bool, uint64) { return !r.follower, 1 }
func (r *fakeRaft) LeaderID() uint64       { return 7 }
func (r *fakeRaft) Member(id uint64) (Member, bool) {
	m, ok := r.members[id]
	return m, ok
}
func (r *fakeRaft) NodeIDs() ([]uint64, error) {
	var ids []uint64
	for id := range r.members {
		ids = append(ids, id)
	}
	return ids, nil
}
func (r *fakeRaft) AddLearner(_ context.Context, id uint64, url string) error {
	r.members[id] = Member{URL: url}
	return nil
}

var measurement = bytes.Repeat([]byte{0xab}, attest.MeasurementSize)

// newTestLeader is the leader of a network of one voter (node 1) that
// approves measurement for virtual nodes.
func newTestLeader(t *testing.T) (*Leader, *fakeState, *fakeRaft) {
	st := &fakeState{maps: map[string]map[string][]byte{}}
	st.put(govwire.MapVirtualMeasurements, hex.EncodeToString(measurement), []byte("{}"))
	r := &fakeRaft{members: map[uint64]Member{1: {URL: "https://127.0.0.1:1", Voter: true}}}
	l := &Leader{
		State: st, Raft: r, Log: slog.New(slog.DiscardHandler),
		Rate: rate.NewLimiter(rate.Inf, 1),
		Index: func() (map[string]uint64, map[uint64]NodeRecord, error) {
			recs, err := Records(st)
			byKey := map[string]uint64{}
			for id, r := range recs {
				byKey[r.PublicKey] = id
			}
			return byKey, recs, err
		},
		Policy: func(p attest.Platform) (attest.Policy, error) {
			return ApprovedPolicy(attest.Policy{}, p, func(m string, keep func(string)) error {
				return st.ScanKV(m, func(k, _ []byte) error { keep(string(k)); return nil })
			})
		},
		IssueCert: func(*ecdsa.PublicKey, uint64) ([]byte, error) { return []byte("cert"), nil },
		Secrets: func() (*Released, error) {
			return &Released{ServiceKey: []byte("service key"), NoteKey: "note key", LedgerSecret: bytes.Repeat([]byte{1}, 32)}, nil
		},
		NoteVerifier: "verifier",
	}
	return l, st, r
}

type testNode struct {
	key      *ecdsa.PrivateKey
	evidence []byte
}

func newTestNode(t *testing.T, m []byte) testNode {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.NewVirtualProvider(m, nil).Evidence(t.Context(), &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	return testNode{k, raw}
}

func (n testNode) body(t *testing.T, url string) []byte {
	b, err := RequestBody(url, n.key, n.evidence)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// While the service opens, a node with approved evidence is recorded
// Trusted (its request as the claims), added as a learner, and given the
// secrets, which only its key opens; the release is recorded first.
func TestJoinWhileOpening(t *testing.T) {
	l, st, r := newTestLeader(t)
	n := newTestNode(t, measurement)
	body := n.body(t, "https://127.0.0.1:2")
	resp, err := l.Join(t.Context(), body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.NodeID != 2 || resp.Status != NodeTrusted || resp.NoteVerifier != "verifier" || !strings.Contains(resp.NodeCert, "CERTIFICATE") {
		t.Errorf("answer %+v", resp)
	}
	if m := r.members[2]; m.URL != "https://127.0.0.1:2" || m.Voter {
		t.Errorf("raft has node 2 as %+v, want a learner", m)
	}
	rec, ok := RecordOf(st, 2)
	if !ok || rec.Status != NodeTrusted || !rec.Joined || !rec.SecretsReleased || rec.PublicKey != PublicKeyPEM(&n.key.PublicKey) ||
		rec.Measurement != hex.EncodeToString(measurement) || !bytes.Equal(rec.QuoteInfo.Evidence, n.evidence) {
		t.Errorf("record %+v", rec)
	}
	if len(st.claims) != 2 || !bytes.Equal(st.claims[0], body) {
		t.Errorf("claims %q: want the join request, then the release", st.claims)
	}
	s, err := OpenSecrets(n.key, 2, n.evidence, resp.Sealed)
	if err != nil || s.NoteKey != "note key" {
		t.Fatalf("secrets %+v, %v", s, err)
	}
	if _, err := OpenSecrets(newTestNode(t, measurement).key, 2, n.evidence, resp.Sealed); err == nil {
		t.Error("another key opened the secrets")
	}
	if _, err := OpenSecrets(n.key, 3, n.evidence, resp.Sealed); err == nil {
		t.Error("the secrets opened for another node id")
	}
	// Asking again changes nothing, and the node keeps its address.
	if again, err := l.Join(t.Context(), n.body(t, "https://127.0.0.1:2")); err != nil || again.NodeID != 2 || len(st.claims) != 2 {
		t.Errorf("again: %+v, %v; %d transactions", again, err, len(st.claims))
	}
	if _, err := l.Join(t.Context(), n.body(t, "https://127.0.0.1:3")); !errors.Is(err, ErrAddressTaken) {
		t.Errorf("another address: %v", err)
	}
}

// Once the service is open a new node waits, Pending, without secrets.
func TestJoinOpenServiceIsPending(t *testing.T) {
	l, st, _ := newTestLeader(t)
	open, _ := json.Marshal(govwire.ServiceInfo{Status: govwire.ServiceOpen})
	st.put(govwire.MapServiceInfo, govwire.KeyService, open)
	resp, err := l.Join(t.Context(), newTestNode(t, measurement).body(t, "https://127.0.0.1:2"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != NodePending || resp.Sealed != nil {
		t.Errorf("answer %+v", resp)
	}
	if rec, _ := RecordOf(st, 2); rec.Status != NodePending || rec.SecretsReleased {
		t.Errorf("record %+v", rec)
	}
}

// Each refusal is its kind, and writes nothing.
func TestJoinRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(*Leader, *fakeState, *fakeRaft, testNode)
		m     []byte
		kind  error
	}{
		"follower":       {func(_ *Leader, _ *fakeState, r *fakeRaft, _ testNode) { r.follower = true }, measurement, ErrNotLeader},
		"unapproved":     {nil, bytes.Repeat([]byte{1}, attest.MeasurementSize), ErrAttestation},
		"rate":           {func(l *Leader, _ *fakeState, _ *fakeRaft, _ testNode) { l.Rate = rate.NewLimiter(0, 0) }, measurement, ErrRateLimited},
		"state fails":    {func(_ *Leader, st *fakeState, _ *fakeRaft, _ testNode) { st.fail = errors.New("disk on fire") }, measurement, ErrUnavailable},
		"pending bound":  {func(_ *Leader, st *fakeState, _ *fakeRaft, _ testNode) { pendingNode(st, 5, NodePending); limit(st, 1) }, measurement, ErrTooManyPending},
		"retired key":    {func(_ *Leader, st *fakeState, _ *fakeRaft, n testNode) { retired(st, n) }, measurement, ErrRetired},
		"too large body": {nil, nil, ErrTooLarge},
		"recovering": {func(_ *Leader, st *fakeState, _ *fakeRaft, _ testNode) {
			v, _ := json.Marshal(govwire.ServiceInfo{Status: govwire.ServiceRecovering})
			st.put(govwire.MapServiceInfo, govwire.KeyService, v)
		}, measurement, ErrUnavailable},
		"waiting for shares": {func(_ *Leader, st *fakeState, _ *fakeRaft, _ testNode) {
			v, _ := json.Marshal(govwire.ServiceInfo{Status: govwire.ServiceWaitingForShares})
			st.put(govwire.MapServiceInfo, govwire.KeyService, v)
		}, measurement, ErrUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			l, st, r := newTestLeader(t)
			n := newTestNode(t, measurement)
			if tc.m != nil {
				n = newTestNode(t, tc.m)
			}
			if tc.setup != nil {
				tc.setup(l, st, r, n)
			}
			body := n.body(t, "https://127.0.0.1:2")
			if tc.kind == ErrTooLarge {
				body = make([]byte, MaxRequest+1)
			}
			before := len(st.claims)
			_, err := l.Join(t.Context(), body)
			var e *Error
			if !errors.Is(err, tc.kind) || !errors.As(err, &e) || e.Detail == "" {
				t.Fatalf("%v, want %v with a detail", err, tc.kind)
			}
			if len(st.claims) != before || len(r.members) != 1 {
				t.Errorf("a refusal wrote %d transactions, raft has %d nodes", len(st.claims)-before, len(r.members))
			}
		})
	}
}

// An attestation refusal tells the operator what governance approves.
func TestJoinAttestationHint(t *testing.T) {
	l, _, _ := newTestLeader(t)
	_, err := l.Join(t.Context(), newTestNode(t, bytes.Repeat([]byte{1}, attest.MeasurementSize)).body(t, "https://127.0.0.1:2"))
	if !errors.Is(err, ErrAttestation) || !strings.Contains(err.Error(), "add_virtual_measurement") {
		t.Errorf("%v", err)
	}
	// An error that is not about the evidence is not an attestation
	// refusal.
	l.Policy = func(attest.Platform) (attest.Policy, error) { return attest.Policy{}, errNotFound }
	if _, err := l.Join(t.Context(), newTestNode(t, measurement).body(t, "https://127.0.0.1:2")); err != errNotFound {
		t.Errorf("%v, want the policy's error as it is", err)
	}
}

func pendingNode(st *fakeState, id uint64, status string) {
	v, _ := json.Marshal(NodeRecord{Status: status, URL: "https://127.0.0.1:9", Joined: true})
	st.put(govwire.MapNodesInfo, strconv.FormatUint(id, 10), v)
}

func limit(st *fakeState, n int) {
	v, _ := json.Marshal(map[string]int{"max_pending_nodes": n})
	st.put(govwire.MapNodeJoinLimits, "limits", v)
}

func retired(st *fakeState, n testNode) {
	v, _ := json.Marshal(NodeRecord{Status: NodeRetired, URL: "https://127.0.0.1:2", PublicKey: PublicKeyPEM(&n.key.PublicKey)})
	st.put(govwire.MapNodesInfo, "4", v)
}
