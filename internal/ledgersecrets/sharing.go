package ledgersecrets

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/pause"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/log"
	"github.com/prometheus/client_golang/prometheus"
)

// The primary keeps the ledger's recovery sharing and ledger secret
// versions as the state calls for them (spec/recovery.md, "When the
// sharing is remade"): after every applied change it compares what the
// state calls for with what the ledger records, and writes the difference
// in one write set. The comparison is against the ledger, not against
// anything this node remembers, so a primary that crashed half-way, or a
// new primary, finds the same difference and does it again; followers do
// nothing.

// kvReader is the applied key-value state.
type kvReader interface {
	GetKV(m string, key []byte) ([]byte, error)
	ScanKV(m string, fn func(key, value []byte) error) error
}

// recoveryMember is an active member with a usable encryption key.
type recoveryMember struct {
	id  string
	pem []byte
	pub *rsa.PublicKey
}

// recoveryState is what the ledger records that the sharing depends on.
type recoveryState struct {
	threshold int // 0: none set
	members   []recoveryMember
	// unusable names members whose encryption key is not an RSA public
	// key of at least 2048 bits: they hold no share.
	unusable   []string
	records    []recovery.SecretRecord // versions 1 … latest, in order
	requested  uint64                  // rekey requests applied
	sharing    *recovery.SharingRecord // nil: none yet
	shareIDs   []string                // members with a share entry
	trusted    map[uint64]*ecdh.PublicKey
	nodeCopies map[uint64]recovery.NodeSecretRecord // node id → its copy
	// recovering: the service was recovered from a previous network and
	// its members have not yet restored the previous ledger secrets; the
	// shares in the ledger are the previous network's, which the members
	// need, so nothing may replace them.
	recovering bool
}

// The states of a recovered service before its members restore the
// ledger secrets (charterd recover, spec/recovery.md).
var recoveringStates = []string{"Recovering", "WaitingForRecoveryShares"}

func (s *recoveryState) latest() uint64 { return uint64(len(s.records)) }

// rekeyDue reports whether a rekey request awaits a new secret version.
func (s *recoveryState) rekeyDue() bool {
	var answered uint64
	if n := len(s.records); n > 0 {
		answered = s.records[n-1].Request
	}
	return s.requested > answered
}

func getJSON(st kvReader, m, key string, v any) (bool, error) {
	b, err := st.GetKV(m, []byte(key))
	if errors.Is(err, log.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s[%s]: %w", m, key, err)
	}
	return true, nil
}

// parseEncryptionKey reads a member's encryption key: an RSA public key
// PEM, SubjectPublicKeyInfo (CCF's) or PKCS#1.
func parseEncryptionKey(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var pub any
	var err error
	switch blk.Type {
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	default:
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	k, ok := pub.(*rsa.PublicKey)
	if !ok || k.N.BitLen() < 2048 {
		return nil, errors.New("not an RSA public key of at least 2048 bits")
	}
	return k, nil
}

func readRecoveryState(st kvReader) (*recoveryState, error) {
	s := &recoveryState{trusted: map[uint64]*ecdh.PublicKey{}, nodeCopies: map[uint64]recovery.NodeSecretRecord{}}
	var svc govwire.ServiceInfo
	if _, err := getJSON(st, govwire.MapServiceInfo, govwire.KeyService, &svc); err != nil {
		return nil, err
	}
	s.recovering = slices.Contains(recoveringStates, svc.Status)
	var t float64
	if ok, err := getJSON(st, govwire.MapRecovery, "threshold", &t); err != nil {
		return nil, err
	} else if ok {
		s.threshold = int(t)
	}
	err := st.ScanKV(govwire.MapMemberInfo, func(k, v []byte) error {
		var info govwire.MemberInfo
		if json.Unmarshal(v, &info) != nil || info.Status != govwire.MemberActive {
			return nil
		}
		keyPEM, err := st.GetKV(govwire.MapMemberEncKeys, k)
		if errors.Is(err, log.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		pub, err := parseEncryptionKey(keyPEM)
		if err != nil {
			s.unusable = append(s.unusable, string(k))
			return nil
		}
		s.members = append(s.members, recoveryMember{id: string(k), pem: keyPEM, pub: pub})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for v := uint64(1); ; v++ {
		var r recovery.SecretRecord
		ok, err := getJSON(st, recovery.MapLedgerSecrets, strconv.FormatUint(v, 10), &r)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if r.Version != v {
			return nil, fmt.Errorf("%s[%d] names version %d", recovery.MapLedgerSecrets, v, r.Version)
		}
		s.records = append(s.records, r)
	}
	if _, err := getJSON(st, recovery.MapRekey, recovery.KeyRekeyRequested, &s.requested); err != nil {
		return nil, err
	}
	var sh recovery.SharingRecord
	if ok, err := getJSON(st, recovery.MapSharing, recovery.KeySharing, &sh); err != nil {
		return nil, err
	} else if ok {
		s.sharing = &sh
	}
	if err := st.ScanKV(recovery.MapShares, func(k, _ []byte) error {
		s.shareIDs = append(s.shareIDs, string(k))
		return nil
	}); err != nil {
		return nil, err
	}
	if err := st.ScanKV(govwire.MapNodesInfo, func(k, v []byte) error {
		id, err := strconv.ParseUint(string(k), 10, 64)
		var r join.NodeRecord
		if err != nil || json.Unmarshal(v, &r) != nil || r.Status != join.NodeTrusted {
			return nil
		}
		if pub, err := nodeECDHKey(r.PublicKey); err == nil {
			s.trusted[id] = pub
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return s, st.ScanKV(recovery.MapNodeSecrets, func(k, v []byte) error {
		id, err := strconv.ParseUint(string(k), 10, 64)
		var r recovery.NodeSecretRecord
		if err == nil && json.Unmarshal(v, &r) == nil {
			s.nodeCopies[id] = r
		}
		return nil
	})
}

// nodeECDHKey is a node's key (its record's PEM, ECDSA P-256) as the ECDH
// key the ledger secrets are sealed to.
func nodeECDHKey(pemText string) (*ecdh.PublicKey, error) {
	blk, _ := pem.Decode([]byte(pemText))
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek.ECDH()
}

// Why the primary made no sharing (the metric's reason label).
const (
	skipNoThreshold   = "no_threshold"
	skipTooFewMembers = "too_few_members"
	skipRecovering    = "recovering"
)

// recoveryPlan is what the primary writes, and why.
type recoveryPlan struct {
	ws *log.WriteSet // nil: nothing to write
	// newVersion and newSecret are the ledger secret version this write
	// set creates (0, nil: none).
	newVersion uint64
	newSecret  []byte
	// skip says why no sharing was made although the basis changed.
	skip  string
	basis string
}

func putJSON(m, key string, v any) (log.Write, error) {
	b, err := json.Marshal(v)
	return log.Write{Map: m, Key: []byte(key), Value: b}, err
}

// planRecovery decides what the ledger lacks: a new ledger secret version
// when a rekey is due, each trusted node's copy of the latest version, and
// a new sharing when its basis changed. secret returns a ledger secret
// version this node holds.
func planRecovery(s *recoveryState, secret func(v uint64) ([]byte, error), rnd io.Reader) (*recoveryPlan, error) {
	p := &recoveryPlan{}
	if s.recovering {
		p.skip = skipRecovering
		return p, nil
	}
	var writes []log.Write
	latest := s.latest()
	cur, err := secret(latest)
	if err != nil {
		return nil, err
	}
	if s.rekeyDue() {
		next := make([]byte, recovery.SecretSize)
		if _, err := io.ReadFull(rnd, next); err != nil {
			return nil, err
		}
		wrapped, err := recovery.WrapPrevious(next, cur, latest)
		if err != nil {
			return nil, err
		}
		latest++
		w, err := putJSON(recovery.MapLedgerSecrets, strconv.FormatUint(latest, 10), recovery.SecretRecord{
			Version: latest, WrappedPrevious: wrapped, Check: recovery.Check(next, latest), Request: s.requested,
		})
		if err != nil {
			return nil, err
		}
		writes = append(writes, w)
		cur, p.newVersion, p.newSecret = next, latest, next
	}
	if latest > 0 {
		ids := make([]uint64, 0, len(s.trusted))
		for id := range s.trusted {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if c, ok := s.nodeCopies[id]; ok && c.Version == latest && c.NodeKey == recovery.NodeKeyID(s.trusted[id]) {
				continue
			}
			sealed, err := recovery.SealForNode(s.trusted[id], id, latest, cur)
			if err != nil {
				return nil, fmt.Errorf("sealing ledger secret %d to node %d: %w", latest, id, err)
			}
			w, err := putJSON(recovery.MapNodeSecrets, strconv.FormatUint(id, 10), recovery.NodeSecretRecord{Version: latest, Encrypted: sealed, NodeKey: recovery.NodeKeyID(s.trusted[id])})
			if err != nil {
				return nil, err
			}
			writes = append(writes, w)
		}
	}
	bm := make([]recovery.BasisMember, len(s.members))
	for i, m := range s.members {
		bm[i] = recovery.BasisMember{ID: m.id, KeyPEM: m.pem}
	}
	p.basis = recovery.Basis(s.threshold, latest, bm)
	if s.sharing == nil || s.sharing.Basis != p.basis {
		switch {
		case s.threshold < 1:
			p.skip = skipNoThreshold
		case len(s.members) < s.threshold:
			p.skip = skipTooFewMembers
		default:
			ws, err := shareWrites(s, latest, cur, p.basis, rnd)
			if err != nil {
				return nil, err
			}
			writes = append(writes, ws...)
		}
	}
	if len(writes) > 0 {
		// Short claims: `charter tx` shows those under 64 bytes.
		p.ws = &log.WriteSet{Writes: writes, Claims: []byte("charter: recovery sharing, by the primary")}
	}
	return p, nil
}

// shareWrites splits a fresh recovery key among the recovery members and
// wraps the latest ledger secret under it; the shares of members that no
// longer are recovery members are deleted.
func shareWrites(s *recoveryState, latest uint64, secret []byte, basis string, rnd io.Reader) ([]log.Write, error) {
	members := make([]recovery.Member, len(s.members))
	ids := make([]string, len(s.members))
	for i, m := range s.members {
		members[i] = recovery.Member{ID: m.id, EncryptionKey: m.pub}
		ids[i] = m.id
	}
	key := recovery.NewKey(rnd)
	sh, err := recovery.Split(rnd, key, s.threshold, members)
	if err != nil {
		return nil, err
	}
	wrapped, err := key.Wrap(secret, recovery.Label(latest))
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	w, err := putJSON(recovery.MapSharing, recovery.KeySharing, recovery.SharingRecord{
		Threshold: s.threshold, Commitment: sh.Commitment, Members: ids,
		LedgerSecretVersion: latest, WrappedLedgerSecret: wrapped, Basis: basis,
	})
	if err != nil {
		return nil, err
	}
	out := []log.Write{w}
	for _, id := range ids {
		w, err := putJSON(recovery.MapShares, id, recovery.ShareRecord{EncryptedShare: sh.Encrypted[id], Basis: basis})
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	for _, id := range s.shareIDs {
		if !slices.Contains(ids, id) {
			out = append(out, log.Write{Map: recovery.MapShares, Key: []byte(id), Delete: true})
		}
	}
	return out, nil
}

// recoverySharer is the primary's loop over planRecovery.
type recoverySharer struct {
	k       *Keeper
	skipped *prometheus.CounterVec
	made    prometheus.Counter
	// loggedSkip is the basis and reason last logged, so a skip is logged
	// once, not after every transaction.
	loggedSkip string
	// barrierTerm is the raft term in which this node, as primary, has
	// applied a transaction of its own: from then on every transaction of
	// an earlier term that will ever apply has applied, so the state it
	// reads holds any ledger secret version an earlier primary created.
	barrierTerm uint64
	// learnFailed is the version of this node's copy that did not open
	// (logged once).
	learnFailed uint64
}

func newRecoverySharer(k *Keeper) *recoverySharer {
	return &recoverySharer{
		k: k,
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "charter_recovery_sharing_skipped_total",
			Help: "Times the primary found the recovery sharing out of date but could not make one, by reason (no_threshold, too_few_members, recovering).",
		}, []string{"reason"}),
		made: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "charter_recovery_writes_total",
			Help: "Write sets of recovery sharing and ledger secret versions this node wrote as primary.",
		}),
	}
}

func (r *recoverySharer) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.skipped, r.made}
}

// run checks after every applied transaction while this node is the
// primary and holds the ledger secrets. A failure is logged and tried
// again after the next transaction or within a second.
func (r *recoverySharer) run(ctx context.Context) error {
	for {
		size := r.k.cfg.Ledger.State().Size
		if r.k.cfg.Identity() != nil {
			r.learn()
		}
		if leader, term := r.k.cfg.Raft.Leader(); leader && r.k.cfg.Identity() != nil {
			if err := r.step(ctx, term); err != nil && ctx.Err() == nil {
				r.k.log.Warn("recovery sharing: will try again", "err", err)
			}
		}
		// At most every recoveryCheckEvery: under a stream of
		// registrations the state is read a few times a second, not once
		// per transaction.
		next := time.Now().Add(recoveryCheckEvery)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = r.k.cfg.Ledger.WaitApplied(wctx, size+1)
		cancel()
		if err := pause.For(ctx, time.Until(next)); err != nil {
			return nil
		}
	}
}

// recoveryCheckEvery spaces the primary's checks.
const recoveryCheckEvery = 200 * time.Millisecond

// learn takes, on every node, the ledger secret version the primary
// sealed to this node as soon as it is in the ledger, so that the node
// holds it sealed on disk before it needs it (and even if it never reads a
// value written under it). A copy that does not open is logged once.
func (r *recoverySharer) learn() {
	var c recovery.NodeSecretRecord
	ok, err := getJSON(r.k.cfg.Ledger, recovery.MapNodeSecrets, strconv.FormatUint(r.k.cfg.NodeID, 10), &c)
	if err != nil || !ok || c.Version == 0 || c.Version == r.learnFailed {
		return
	}
	if pub, err := r.k.nodeKey.PublicKey.ECDH(); err != nil || c.NodeKey != recovery.NodeKeyID(pub) {
		return // sealed to another key: the primary seals a new copy
	}
	if _, held := r.k.ring.get(c.Version); held {
		return
	}
	if err := r.k.learnSecrets(); err != nil {
		r.learnFailed = c.Version
		r.k.log.Warn("this node cannot open the ledger secret sealed to it", "version", c.Version, "err", err)
	}
}

func (r *recoverySharer) step(ctx context.Context, term uint64) error {
	// A recovered service does not hold its ledger secrets until the
	// members' shares bring them back (internal/restore, then Keeper.Adopt): sharing or sealing
	// what it holds meanwhile would replace the sharing they recover with.
	if r.k.recovering() {
		return nil
	}
	st, err := readRecoveryState(r.k.cfg.Ledger)
	if err != nil {
		return err
	}
	if st.rekeyDue() && r.barrierTerm != term {
		// A new version must be created once: a primary of an earlier
		// term may have proposed one that is still to apply.
		w, err := putJSON(recovery.MapRekey, "primary", map[string]uint64{"node_id": r.k.cfg.NodeID, "term": term})
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		txid, err := r.k.cfg.Ledger.SubmitWrites(sctx, &log.WriteSet{Writes: []log.Write{w}, Claims: []byte("charter: the primary's rekey barrier")})
		cancel()
		if err != nil {
			return err
		}
		if txid.View != term {
			return fmt.Errorf("barrier applied in term %d, not %d", txid.View, term)
		}
		r.barrierTerm = term
		if st, err = readRecoveryState(r.k.cfg.Ledger); err != nil {
			return err
		}
	}
	for _, id := range st.unusable {
		r.k.log.Warn("recovery sharing: this member's encryption key is not an RSA public key of at least 2048 bits; it holds no share", "member", id)
	}
	p, err := planRecovery(st, r.k.LedgerSecret, rand.Reader)
	if err != nil {
		return err
	}
	if p.skip != "" && r.loggedSkip != p.basis+p.skip {
		r.loggedSkip = p.basis + p.skip
		r.skipped.WithLabelValues(p.skip).Inc()
		r.k.log.Warn("recovery sharing not made", "reason", p.skip, "threshold", st.threshold, "recovery_members", len(st.members))
	}
	if p.ws == nil {
		return nil
	}
	if p.newSecret != nil {
		// Held before the version exists in the ledger: this node writes
		// under it as soon as it applies, and a crash before it applies
		// leaves a version nobody uses (the next primary makes another).
		if err := r.k.ring.add(p.newVersion, p.newSecret); err != nil {
			return err
		}
		fault.Point(fault.RekeyBeforePropose)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.k.cfg.Ledger.SubmitWrites(sctx, p.ws); err != nil {
		return err
	}
	r.made.Inc()
	r.k.log.Info("recovery sharing written", "basis", p.basis, "threshold", st.threshold, "recovery_members", len(st.members), "new_ledger_secret_version", p.newVersion)
	return nil
}
