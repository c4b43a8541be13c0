package node

// The node's part of the join protocol (internal/join): the leader
// answers POST /node/join through its join.Leader; a joining node asks
// through internal/joinclient (joinclient.JoinNetwork, then awaitSecrets
// until it is trusted), which keeps what the answers give in its data
// directory.

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/joinclient"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/log"
	"golang.org/x/time/rate"
)

// attestationPolicy is what the network accepts now: the governed maps for
// the evidence's platform, and this node's verification settings.
func (n *Node) attestationPolicy(platform attest.Platform) (attest.Policy, error) {
	base := attest.Policy{Roots: n.amdRoots, CertCacheDir: n.cfg.Attestation.CertCacheDir,
		AllowNetwork: n.cfg.Attestation.AllowNetwork, MinTCB: n.cfg.Attestation.MinTCB}
	return join.ApprovedPolicy(base, platform, func(m string, keep func(hexKey string)) error {
		return n.ledger.ScanKV(m, func(k, _ []byte) error { keep(string(k)); return nil })
	})
}

// DefaultMaxPendingNodes is how many joined nodes may wait to become
// trusted voters at once, unless governance says otherwise
// (set_node_join_limits).
const DefaultMaxPendingNodes = join.DefaultMaxPendingNodes

// newJoinLeader is the leader's side of the protocol over this node's
// ledger and raft.
func (n *Node) newJoinLeader() *join.Leader {
	return &join.Leader{
		State: n.ledger, Raft: joinRaft{n.raft}, Log: n.log,
		Rate:   rate.NewLimiter(joinsPerSecond, joinBurst),
		Index:  n.peers.Index,
		Policy: n.attestationPolicy,
		IssueCert: func(key *ecdsa.PublicKey, id uint64) ([]byte, error) {
			return identity.IssueNodeCert(n.secrets(), key, id, "", false)
		},
		Secrets:      n.releasedSecrets,
		NoteVerifier: n.id.NoteVerifier,
	}
}

// joinRaft is raft's membership as join.Leader sees it.
type joinRaft struct{ *replication.Node }

func (r joinRaft) Member(id uint64) (join.Member, bool) {
	info, err := r.NodeInfo(id)
	if err != nil {
		return join.Member{}, false
	}
	return join.Member{URL: info.URL, Voter: info.Role == replication.RoleVoter, Removed: info.Role == replication.RoleRemoved}, true
}

func (r joinRaft) NodeIDs() ([]uint64, error) {
	nodes, err := r.Nodes()
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(nodes))
	for _, info := range nodes {
		ids = append(ids, info.ID)
	}
	return ids, nil
}

// releasedSecrets are the service's secrets, to seal to a trusted node.
func (n *Node) releasedSecrets() (*join.Released, error) {
	full := n.secrets()
	if !full.HasSecrets() {
		return nil, errors.New("this node does not hold the service's secrets to release")
	}
	der, err := x509.MarshalPKCS8PrivateKey(full.ServiceKey)
	if err != nil {
		return nil, err
	}
	return &join.Released{ServiceKey: der, NoteKey: full.NoteSignerKey(), LedgerSecret: full.LedgerSecret}, nil
}

// secrets is the identity with the service's secrets if this node holds
// them (at start, or since the network released them), else the public
// one.
func (n *Node) secrets() *identity.Identity {
	if f := n.full.Load(); f != nil {
		return f
	}
	return n.id
}

// awaitSecrets returns the full identity: at once if this node holds the
// secrets, else once the network releases them (the node is Trusted),
// asking the leader over the peers' client meanwhile.
func (n *Node) awaitSecrets(ctx context.Context) (*identity.Identity, error) {
	if n.id.HasSecrets() {
		return n.id, nil
	}
	j, err := joinclient.New(n.cfg.DataDir, n.sealer, n.URL(), n.nodeKey, n.evidence)
	if err != nil {
		return nil, err
	}
	leader := func() (string, *http.Client, bool) {
		id := n.raft.LeaderID()
		u, ok := n.raft.PeerURL(id)
		if !ok {
			return "", nil, false
		}
		return u, n.peers.Client(id), true
	}
	if err := j.AwaitSecrets(ctx, leader, n.log); err != nil {
		return nil, err
	}
	id, err := identity.LoadOrCreate(n.cfg.DataDir, "", false, n.sealer)
	if err != nil {
		return nil, err
	}
	n.log.Info("received the service's secrets: this node is trusted")
	return id, nil
}

// genesisNodeWrites are the first node's record and, as CCF does, the
// approval of its own measurement (join.GenesisWrites).
func (n *Node) genesisNodeWrites(development bool) ([]log.Write, error) {
	base := attest.Policy{Roots: n.amdRoots, CertCacheDir: n.cfg.Attestation.CertCacheDir, AllowNetwork: n.cfg.Attestation.AllowNetwork}
	return join.GenesisWrites(context.Background(), n.cfg.NodeID, n.URL(), &n.nodeKey.PublicKey, n.evidence, base, development)
}
