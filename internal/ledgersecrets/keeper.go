// Package ledgersecrets owns a node's ledger secrets after the first and
// their upkeep (spec/recovery.md): the later versions this node holds,
// sealed in its data directory; the versions the primary seals to it in
// the ledger, unwound and checked before use; the primary's rekey and its
// keeping of the recovery sharing in the ledger; and the secrets the
// members' shares recover (Keeper.Adopt). It speaks no HTTP and knows
// nothing of the node: the node hands it the ledger and raft through
// interfaces, and its keys and identity.
package ledgersecrets

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/internal/seal"
	"github.com/charterlog/charter/log"
	"github.com/prometheus/client_golang/prometheus"
)

// Ledger is the applied state the keeper reads, and the way the primary
// writes to it (the node's ledger).
type Ledger interface {
	GetKV(m string, key []byte) ([]byte, error)
	ScanKV(m string, fn func(key, value []byte) error) error
	SubmitWrites(ctx context.Context, ws *log.WriteSet) (log.TxID, error)
	WaitApplied(ctx context.Context, size uint64) error
	State() ledger.State
}

// Raft says whether this node is the primary, and in which term.
type Raft interface {
	Leader() (bool, uint64)
}

// Config is what the node hands the keeper.
type Config struct {
	DataDir string
	Sealer  *seal.Sealer
	NodeID  uint64
	// NodeKey is the key the primary seals this node's copies to.
	NodeKey *ecdsa.PrivateKey
	Ledger  Ledger
	Raft    Raft
	// Identity is the node's identity with the service's secrets (version
	// 0 of the ledger secret), nil until the node holds them; SetIdentity
	// replaces it when Adopt recovers version 0.
	Identity    func() *identity.Identity
	SetIdentity func(*identity.Identity)
	Log         *slog.Logger
}

// Keeper holds this node's ledger secret versions and, while the node is
// the primary, keeps the recovery sharing (sharing.go).
type Keeper struct {
	cfg     Config
	ring    *secretRing
	log     *slog.Logger
	sharer  *recoverySharer
	nodeKey *ecdsa.PrivateKey
}

// Open reads back the later versions this node keeps sealed in its data
// directory.
func Open(cfg Config) (*Keeper, error) {
	ring, err := openSecretRing(cfg.DataDir, cfg.Sealer)
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{cfg: cfg, ring: ring, log: cfg.Log, nodeKey: cfg.NodeKey}
	k.sharer = newRecoverySharer(k)
	return k, nil
}

// Run keeps the ledger secrets until ctx ends: every node takes the
// versions sealed to it; the primary rekeys and keeps the sharing.
func (k *Keeper) Run(ctx context.Context) error { return k.sharer.run(ctx) }

// Collectors are the keeper's metrics.
func (k *Keeper) Collectors() []prometheus.Collector { return k.sharer.collectors() }

// This node's ledger secret versions after the first (spec/recovery.md).
// The first is the identity's; the later ones come from the ledger: the
// primary seals the latest version to every trusted node
// (public:ccf.internal.ledger_secrets.nodes), and each version ≥ 1 holds
// its predecessor wrapped under it, so the latest unwinds to all. What
// this node learns it keeps sealed in its data directory
// (identity.FileLaterLedgerSecrets), so it reads them back at restart
// without the ledger; every secret handed out is first checked against its
// version's public check value, so a version a crashed primary made and
// never committed is never used.

// secretRing holds the later versions this node has.
type secretRing struct {
	dir    string
	sealer *seal.Sealer

	mu sync.Mutex
	v  map[uint64][]byte
}

func openSecretRing(dir string, s *seal.Sealer) (*secretRing, error) {
	v, err := identity.LoadLaterLedgerSecrets(dir, s)
	if err != nil {
		return nil, err
	}
	return &secretRing{dir: dir, sealer: s, v: v}, nil
}

// add keeps secret as version v, sealed on disk before it is used.
func (r *secretRing) add(v uint64, secret []byte) error {
	return r.addAll(map[uint64][]byte{v: secret})
}

func (r *secretRing) addAll(secrets map[uint64][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := maps.Clone(r.v)
	changed := false
	for v, s := range secrets {
		if v == 0 || bytes.Equal(next[v], s) {
			continue
		}
		next[v] = bytes.Clone(s)
		changed = true
	}
	if !changed {
		return nil
	}
	if len(next) > identity.MaxLedgerSecretVersions {
		return fmt.Errorf("more than %d ledger secret versions", identity.MaxLedgerSecretVersions)
	}
	if err := identity.StoreLaterLedgerSecrets(r.dir, r.sealer, next); err != nil {
		return err
	}
	r.v = next
	return nil
}

func (r *secretRing) get(v uint64) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.v[v]
	return s, ok
}

// ErrSecretNotHeld: the ledger names a secret version this node does not
// hold (yet: the primary seals the latest to each trusted node).
var ErrSecretNotHeld = errors.New("this node does not hold that ledger secret version yet")

func secretRecord(st kvReader, v uint64) (*recovery.SecretRecord, error) {
	var r recovery.SecretRecord
	ok, err := getJSON(st, recovery.MapLedgerSecrets, strconv.FormatUint(v, 10), &r)
	if err != nil {
		return nil, err
	}
	if !ok || r.Version != v {
		return nil, fmt.Errorf("ledger secret version %d is not in the ledger", v)
	}
	return &r, nil
}

// LedgerSecret is ledger secret version v, checked against the ledger.
func (k *Keeper) LedgerSecret(v uint64) ([]byte, error) {
	full := k.cfg.Identity()
	if full == nil {
		return nil, errors.New("this node does not hold the ledger secrets")
	}
	if v == 0 {
		return full.LedgerSecret, nil
	}
	rec, err := secretRecord(k.cfg.Ledger, v)
	if err != nil {
		return nil, err
	}
	if s, ok := k.ring.get(v); ok && rec.VerifyCheck(s) == nil {
		return s, nil
	}
	if err := k.learnSecrets(); err != nil {
		return nil, err
	}
	if s, ok := k.ring.get(v); ok && rec.VerifyCheck(s) == nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w (version %d)", ErrSecretNotHeld, v)
}

// LatestLedgerSecret is the newest version in the ledger, the one private
// writes use.
func (k *Keeper) LatestLedgerSecret() (uint64, []byte, error) {
	var latest uint64
	for {
		_, err := k.cfg.Ledger.GetKV(recovery.MapLedgerSecrets, []byte(strconv.FormatUint(latest+1, 10)))
		if errors.Is(err, log.ErrNotFound) {
			break
		}
		if err != nil {
			return 0, nil, err
		}
		latest++
	}
	s, err := k.LedgerSecret(latest)
	return latest, s, err
}

// learnSecrets opens this node's copy of the latest secret it was sealed
// and unwinds the versions before it.
func (k *Keeper) learnSecrets() error {
	var copy recovery.NodeSecretRecord
	ok, err := getJSON(k.cfg.Ledger, recovery.MapNodeSecrets, strconv.FormatUint(k.cfg.NodeID, 10), &copy)
	if err != nil || !ok {
		return errors.Join(err, fmt.Errorf("%w: no copy sealed to this node in the ledger", ErrSecretNotHeld))
	}
	if copy.Version == 0 || copy.Version > identity.MaxLedgerSecretVersions {
		return fmt.Errorf("this node's ledger secret copy names version %d", copy.Version)
	}
	priv, err := k.nodeKey.ECDH()
	if err != nil {
		return err
	}
	latest, err := recovery.OpenForNode(priv, k.cfg.NodeID, copy.Version, copy.Encrypted)
	if err != nil {
		return err
	}
	records := make([]recovery.SecretRecord, copy.Version)
	for v := uint64(1); v <= copy.Version; v++ {
		r, err := secretRecord(k.cfg.Ledger, v)
		if err != nil {
			return err
		}
		records[v-1] = *r
	}
	all, err := recovery.Unchain(latest, records)
	if err != nil {
		return err
	}
	if full := k.cfg.Identity(); full == nil || !bytes.Equal(all[0], full.LedgerSecret) {
		return errors.New("the ledger secrets sealed to this node do not unwind to the ledger secret it holds")
	}
	got := map[uint64][]byte{}
	for v := 1; v < len(all); v++ {
		got[uint64(v)] = all[v]
	}
	return k.ring.addAll(got)
}

// Adopt makes the ledger secrets the members' shares recovered (versions 0
// to latest) this node's, sealed on disk before use: version 0 replaces the
// identity's (in memory too, through SetIdentity, for the app's private
// maps and for nodes that join later), the later ones go to the secret
// ring. The recovered ledger's private values are encrypted under them;
// apps were refused until now (Recovering, WaitingForRecoveryShares), so
// nothing was written, and no app cipher made, under the secret version 0
// replaces.
func (k *Keeper) Adopt(secrets [][]byte) error {
	if len(secrets) == 0 {
		return errors.New("no ledger secret was recovered")
	}
	full := k.cfg.Identity()
	if full == nil {
		return errors.New("this node does not hold the service's secrets")
	}
	later := map[uint64][]byte{}
	for v, s := range secrets[1:] {
		later[uint64(v+1)] = s
	}
	if err := k.ring.addAll(later); err != nil {
		return err
	}
	if err := identity.StoreLedgerSecret(k.cfg.DataDir, k.cfg.Sealer, secrets[0]); err != nil {
		return err
	}
	next := *full
	next.LedgerSecret = bytes.Clone(secrets[0])
	k.cfg.SetIdentity(&next)
	return nil
}

// recovering reports whether the service is a recovered one its members
// have not opened, or whose secrets their shares have not brought back.
func (k *Keeper) recovering() bool {
	var info govwire.ServiceInfo
	raw, err := k.cfg.Ledger.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService))
	return err == nil && json.Unmarshal(raw, &info) == nil && govwire.Recovering(info.Status)
}
