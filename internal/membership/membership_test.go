package membership

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/log"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/quorum"
	"go.etcd.io/raft/v3/tracker"
)

// memState is applied state in memory.
type memState map[string]map[string][]byte

func (m memState) GetKV(name string, key []byte) ([]byte, error) {
	if v, ok := m[name][string(key)]; ok {
		return v, nil
	}
	return nil, log.ErrNotFound
}

func (m memState) ScanKV(name string, fn func(k, v []byte) error) error {
	for k, v := range m[name] {
		if err := fn([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (m memState) SubmitWrites(context.Context, *log.WriteSet) (log.TxID, error) {
	return log.TxID{}, errors.New("membership never writes")
}

func (m memState) put(t *testing.T, name, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if m[name] == nil {
		m[name] = map[string][]byte{}
	}
	m[name][key] = b
}

func (m memState) node(t *testing.T, id uint64, r join.NodeRecord) {
	m.put(t, govwire.MapNodesInfo, strconv.FormatUint(id, 10), r)
}

// TestMayVote: a node that joined by attestation votes only once its
// secrets were released; any other votes at once while the service is
// opening, and only once trusted after it opened.
func TestMayVote(t *testing.T) {
	st := memState{}
	st.node(t, 2, join.NodeRecord{Status: join.NodeTrusted, Joined: true})
	st.node(t, 3, join.NodeRecord{Status: join.NodeTrusted, Joined: true, SecretsReleased: true})
	st.node(t, 4, join.NodeRecord{Status: join.NodePending, Joined: true, SecretsReleased: true})
	st.node(t, 5, join.NodeRecord{Status: join.NodePending})
	st.node(t, 6, join.NodeRecord{Status: join.NodeTrusted})
	k := &Keeper{NodeID: 1, Ledger: st}
	opening := map[uint64]bool{2: false, 3: true, 4: false, 5: true, 6: true, 7: true}
	for id, want := range opening {
		if got := k.mayVote(id); got != want {
			t.Errorf("opening service: mayVote(%d) = %v, want %v", id, got, want)
		}
	}
	st.put(t, govwire.MapServiceInfo, govwire.KeyService, govwire.ServiceInfo{Status: govwire.ServiceOpen})
	open := map[uint64]bool{2: false, 3: true, 4: false, 5: false, 6: true, 7: false}
	for id, want := range open {
		if got := k.mayVote(id); got != want {
			t.Errorf("open service: mayVote(%d) = %v, want %v", id, got, want)
		}
	}
}

// fakeRaft records the nodes removed.
type fakeRaft struct {
	status  raft.Status
	removed []uint64
}

func (f *fakeRaft) Leader() (bool, uint64)                { return true, 1 }
func (f *fakeRaft) Status() raft.Status                   { return f.status }
func (f *fakeRaft) Promote(context.Context, uint64) error { return nil }
func (f *fakeRaft) Remove(_ context.Context, id uint64) error {
	f.removed = append(f.removed, id)
	return nil
}

// TestRetireNodes: the leader removes the voters and learners governance
// retired, never itself nor a node already out of the configuration.
func TestRetireNodes(t *testing.T) {
	st := memState{}
	for _, id := range []uint64{1, 2, 4, 9} {
		st.node(t, id, join.NodeRecord{Status: join.NodeRetired})
	}
	st.node(t, 3, join.NodeRecord{Status: join.NodeTrusted})
	r := &fakeRaft{}
	r.status.Config = tracker.Config{
		Voters:   quorum.JointConfig{quorum.MajorityConfig{1: {}, 2: {}, 3: {}}, nil},
		Learners: map[uint64]struct{}{4: {}},
	}
	k := &Keeper{NodeID: 1, Raft: r, Ledger: st, Log: slog.New(slog.DiscardHandler)}
	k.retireNodes(context.Background())
	slices.Sort(r.removed)
	if !slices.Equal(r.removed, []uint64{2, 4}) {
		t.Errorf("removed %v, want [2 4]", r.removed)
	}
}
