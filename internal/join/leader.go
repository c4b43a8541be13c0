package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
	"golang.org/x/time/rate"
)

// Raft is what admitting a node needs of consensus.
type Raft interface {
	// Leader reports whether this node leads (and the term).
	Leader() (bool, uint64)
	LeaderID() uint64
	// Member is node id's entry in raft's membership; ok is false if
	// raft has none (or cannot read it).
	Member(id uint64) (m Member, ok bool)
	// NodeIDs lists every node raft has an entry for, removed ones too.
	NodeIDs() ([]uint64, error)
	// AddLearner proposes node id at url as a learner; it returns once
	// the change is proposed, not applied.
	AddLearner(ctx context.Context, id uint64, url string) error
}

// Member is a node as raft's membership has it.
type Member struct {
	URL            string
	Voter, Removed bool
}

// DefaultMaxPendingNodes is how many joined nodes may wait to become
// trusted voters at once, unless governance says otherwise
// (set_node_join_limits).
const DefaultMaxPendingNodes = 4

// Leader is the leader's side of the protocol (steps 2–4).
type Leader struct {
	State State
	Raft  Raft
	Log   *slog.Logger
	// Rate bounds how fast nodes the network does not know yet may join.
	Rate *rate.Limiter
	// Index is the node records by key (PublicKeyPEM) and by id, as of
	// the committed state.
	Index func() (byKey map[string]uint64, byID map[uint64]NodeRecord, err error)
	// Policy is what the network accepts now for evidence of a platform
	// (ApprovedPolicy over this node's verification settings).
	Policy func(attest.Platform) (attest.Policy, error)
	// IssueCert issues node id's client certificate for key (DER): the
	// node issues its own server certificate once it holds the service key.
	IssueCert func(key *ecdsa.PublicKey, id uint64) ([]byte, error)
	// Secrets are the service's secrets to release to a trusted node, or
	// an error if this node does not hold them.
	Secrets func() (*Released, error)
	// NoteVerifier is the service's note verifier key, for the answer.
	NoteVerifier string

	// mu serialises joins: the next id and the record are a
	// read-modify-write.
	mu sync.Mutex
}

// Join admits the node whose join request body is, and answers it. Its
// refusals are *Error; other errors are the ledger's or consensus's.
func (l *Leader) Join(ctx context.Context, body []byte) (*Response, error) {
	if len(body) > MaxRequest {
		return nil, refuse(ErrTooLarge, fmt.Sprintf("a join request is at most %d bytes", MaxRequest))
	}
	req, key, ev, err := ParseRequest(body)
	if err != nil {
		return nil, err
	}
	if leader, _ := l.Raft.Leader(); !leader {
		return nil, refuse(ErrNotLeader, fmt.Sprintf("send the join request to the leader (node %d)", l.Raft.LeaderID()))
	}
	// A recovered service holds only a new ledger secret until its members'
	// shares recover the previous ones; a node admitted now would be given
	// that secret alone and never the recovered ones. It joins once the
	// service is open.
	if serviceRecovering(l.State) {
		return nil, refuse(ErrUnavailable, "the service is being recovered: nodes join once the members have opened it and submitted their recovery shares; retry then")
	}
	// Joins cost the joiner, not the network: a key the network does not
	// know yet is admitted at a bounded rate, checked before its evidence
	// costs a verification; a known key (a node asking again for its
	// secrets) is not counted.
	byKey, _, err := l.Index()
	if err != nil {
		return nil, err
	}
	_, known := byKey[PublicKeyPEM(key)]
	if !known && !l.Rate.Allow() {
		return nil, refuse(ErrRateLimited, fmt.Sprintf("joins of new nodes are limited to %v per second (burst %d); retry later", float64(l.Rate.Limit()), l.Rate.Burst()))
	}
	verified, err := l.verify(ctx, ev, key)
	if err != nil {
		l.Log.Warn("refused a joining node's evidence", "url", req.URL, "platform", ev.Platform, "err", err)
		return nil, attestationRefusal(err)
	}
	// One admission at a time (the pending bound and raft's one
	// configuration change at a time both need it). Another request is
	// answered at once, retryable, rather than held behind it: an
	// admission may wait seconds for its configuration change to commit.
	if !l.mu.TryLock() {
		return nil, refuse(ErrUnavailable, "another node's join is being admitted; retry")
	}
	defer l.mu.Unlock()
	if !known {
		pending, limit, err := l.pending()
		if err != nil {
			return nil, err
		}
		if pending >= limit {
			return nil, refuse(ErrTooManyPending, fmt.Sprintf("%d nodes have joined and are not yet trusted voters, the most this network allows (set_node_join_limits); retry once governance trusts or removes one", pending))
		}
	}
	id, rec, err := l.admit(ctx, req, key, ev, verified, body)
	if err != nil {
		return nil, err
	}
	certDER, err := l.IssueCert(key, id)
	if err != nil {
		return nil, err
	}
	resp := &Response{NodeID: id, Status: rec.Status, NoteVerifier: l.NoteVerifier,
		NodeCert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))}
	if rec.Status == NodeTrusted {
		s, err := l.Secrets()
		if err != nil {
			return nil, err
		}
		sealed, err := SealSecrets(s, key, id, sha256.Sum256(req.Evidence))
		if err != nil {
			return nil, err
		}
		if !rec.SecretsReleased {
			// Recorded before the answer: a node may vote only once the
			// ledger says it was given the keys to lead with.
			rec.SecretsReleased = true
			if err := writeRecord(ctx, l.State, id, rec, nil); err != nil {
				return nil, refuse(ErrUnavailable, err.Error())
			}
			l.Log.Info("released the service's secrets to a trusted node", "node_id", id)
		}
		resp.Sealed = sealed
	}
	return resp, nil
}

// verify checks a node's evidence against what the network accepts.
func (l *Leader) verify(ctx context.Context, ev *attest.Evidence, key *ecdsa.PublicKey) (*attest.Verified, error) {
	p, err := l.Policy(ev.Platform)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return attest.Verify(ctx, ev, key, p)
}

// attestationRefusal is the refusal for evidence that did not verify,
// with what governance or the operator could do about it; an error that
// is not about the evidence is returned as it is.
func attestationRefusal(err error) error {
	detail := err.Error()
	switch {
	case errors.Is(err, attest.ErrMeasurement):
		detail += "; members approve a measurement with add_snp_measurement (add_virtual_measurement for the virtual platform)"
	case errors.Is(err, attest.ErrHostData):
		detail += "; members approve host data with add_snp_host_data"
	case errors.Is(err, attest.ErrVirtualNotAllowed):
		detail += "; this network accepts virtual nodes only while governance approves a virtual measurement (add_virtual_measurement)"
	case errors.Is(err, attest.ErrSignature):
		detail += "; the report must be signed by a VCEK or VLEK chained to the AMD root this network trusts"
	case errors.Is(err, attest.ErrMalformed), errors.Is(err, attest.ErrPlatform), errors.Is(err, attest.ErrReportData),
		errors.Is(err, attest.ErrDebug), errors.Is(err, attest.ErrGuestPolicy), errors.Is(err, attest.ErrVMPL), errors.Is(err, attest.ErrTCB):
	default:
		return err
	}
	return refuse(ErrAttestation, detail)
}

// pending counts the nodes that joined and are not yet voters (nor
// retired or removed), and returns the governed bound on them.
func (l *Leader) pending() (int, int, error) {
	limit := DefaultMaxPendingNodes
	if raw, err := l.State.GetKV(govwire.MapNodeJoinLimits, []byte("limits")); err == nil {
		var lim struct {
			MaxPendingNodes int `json:"max_pending_nodes"`
		}
		if json.Unmarshal(raw, &lim) == nil && lim.MaxPendingNodes > 0 {
			limit = lim.MaxPendingNodes
		}
	}
	_, recs, err := l.Index()
	if err != nil {
		return 0, 0, err
	}
	pending := 0
	for id, rec := range recs {
		if rec.Status == NodeRetired {
			continue
		}
		if m, ok := l.Raft.Member(id); ok && (m.Voter || m.Removed) {
			continue
		}
		pending++
	}
	return pending, limit, nil
}

// admit records a verified joining node, or finds it if it joined before
// (same node key), and makes sure raft has it as a learner.
func (l *Leader) admit(ctx context.Context, req *Request, key *ecdsa.PublicKey, ev *attest.Evidence, v *attest.Verified, body []byte) (uint64, NodeRecord, error) {
	recs, err := Records(l.State)
	if err != nil {
		return 0, NodeRecord{}, err
	}
	ids, err := l.Raft.NodeIDs()
	if err != nil {
		return 0, NodeRecord{}, err
	}
	keyPEM := PublicKeyPEM(key)
	var id uint64
	var rec NodeRecord
	next := uint64(1)
	for rid, r := range recs {
		next = max(next, rid+1)
		if r.PublicKey == keyPEM {
			id, rec = rid, r
		}
	}
	for _, rid := range ids {
		next = max(next, rid+1)
	}
	switch {
	case id != 0 && rec.Status == NodeRetired:
		return 0, rec, refuse(ErrRetired, fmt.Sprintf("node %d, which has this key, was removed from the network; start a new node with a new data directory", id))
	case id != 0 && rec.URL != req.URL:
		return 0, rec, refuse(ErrAddressTaken, fmt.Sprintf("node %d has this key at %s; a node keeps its address", id, rec.URL))
	case id == 0:
		id = next
		status := NodePending
		if !ServiceOpen(l.State) {
			status = NodeTrusted
		}
		rec = NewRecord(status, req.URL, key, ev, req.Evidence, v)
		rec.Joined = true
		// The claims are the join request itself: the ledger shows what the
		// node presented.
		if err := writeRecord(ctx, l.State, id, rec, body); err != nil {
			return 0, rec, refuse(ErrUnavailable, err.Error())
		}
		l.Log.Info("recorded a joining node", "node_id", id, "url", req.URL, "platform", ev.Platform, "measurement", rec.Measurement, "status", status)
	}
	if m, ok := l.Raft.Member(id); ok && !m.Removed {
		return id, rec, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Raft.AddLearner(ctx, id, req.URL); err != nil {
		return 0, rec, refuse(ErrUnavailable, err.Error())
	}
	// Wait for the change to apply, so that the answer's node is one raft
	// replicates to.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		if m, ok := l.Raft.Member(id); ok && m.URL == req.URL {
			break
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return 0, rec, refuse(ErrUnavailable, "the configuration change did not commit in time; retry")
		}
	}
	l.Log.Info("added learner", "node_id", id, "url", req.URL)
	return id, rec, nil
}
