package node

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/internal/seal"
)

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

// ledgerSecret is ledger secret version v, checked against the ledger.
func (n *Node) ledgerSecret(v uint64) ([]byte, error) {
	full := n.full.Load()
	if full == nil {
		return nil, errors.New("this node does not hold the ledger secrets")
	}
	if v == 0 {
		return full.LedgerSecret, nil
	}
	rec, err := secretRecord(n.ledger, v)
	if err != nil {
		return nil, err
	}
	if s, ok := n.laterSecrets.get(v); ok && rec.VerifyCheck(s) == nil {
		return s, nil
	}
	if err := n.learnSecrets(); err != nil {
		return nil, err
	}
	if s, ok := n.laterSecrets.get(v); ok && rec.VerifyCheck(s) == nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w (version %d)", ErrSecretNotHeld, v)
}

// latestLedgerSecret is the newest version in the ledger, the one private
// writes use.
func (n *Node) latestLedgerSecret() (uint64, []byte, error) {
	var latest uint64
	for {
		_, err := n.ledger.GetKV(recovery.MapLedgerSecrets, []byte(strconv.FormatUint(latest+1, 10)))
		if errors.Is(err, ledger.ErrNotFound) {
			break
		}
		if err != nil {
			return 0, nil, err
		}
		latest++
	}
	s, err := n.ledgerSecret(latest)
	return latest, s, err
}

// learnSecrets opens this node's copy of the latest secret it was sealed
// and unwinds the versions before it.
func (n *Node) learnSecrets() error {
	var copy recovery.NodeSecretRecord
	ok, err := getJSON(n.ledger, recovery.MapNodeSecrets, strconv.FormatUint(n.cfg.NodeID, 10), &copy)
	if err != nil || !ok {
		return errors.Join(err, fmt.Errorf("%w: no copy sealed to this node in the ledger", ErrSecretNotHeld))
	}
	if copy.Version == 0 || copy.Version > identity.MaxLedgerSecretVersions {
		return fmt.Errorf("this node's ledger secret copy names version %d", copy.Version)
	}
	priv, err := n.nodeKey.ECDH()
	if err != nil {
		return err
	}
	latest, err := recovery.OpenForNode(priv, n.cfg.NodeID, copy.Version, copy.Encrypted)
	if err != nil {
		return err
	}
	records := make([]recovery.SecretRecord, copy.Version)
	for v := uint64(1); v <= copy.Version; v++ {
		r, err := secretRecord(n.ledger, v)
		if err != nil {
			return err
		}
		records[v-1] = *r
	}
	all, err := recovery.Unchain(latest, records)
	if err != nil {
		return err
	}
	if full := n.full.Load(); full == nil || !bytes.Equal(all[0], full.LedgerSecret) {
		return errors.New("the ledger secrets sealed to this node do not unwind to the ledger secret it holds")
	}
	got := map[uint64][]byte{}
	for v := 1; v < len(all); v++ {
		got[uint64(v)] = all[v]
	}
	return n.laterSecrets.addAll(got)
}

// appSecrets is the node's ledger secrets as apphost asks for them.
type appSecrets struct{ n *Node }

func (a appSecrets) LedgerSecret(v uint64) ([]byte, error)       { return a.n.ledgerSecret(v) }
func (a appSecrets) LatestLedgerSecret() (uint64, []byte, error) { return a.n.latestLedgerSecret() }
