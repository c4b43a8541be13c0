package restore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/pause"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// Ledger is the node's ledger as a recovery reads and writes it.
type Ledger interface {
	join.State
	State() ledger.State
	Recoveries() ([]ledger.RecoveryAt, error)
	SubmitRecovery(ctx context.Context, r *log.Recovery) (log.TxID, error)
}

// Recorder is the running node's part in a recovery: the node hands it its
// identity, ledger and raft.
type Recorder struct {
	DataDir  string
	NodeID   uint64
	Identity *identity.Identity
	Ledger   Ledger
	Raft     interface{ Leader() (bool, uint64) }
	// NodeWrites are this node's record and its measurement's approval, as
	// at genesis (join.GenesisWrites).
	NodeWrites func(development bool) ([]log.Write, error)
	Log        *slog.Logger
}

// CheckServiceIdentity checks that this node's service certificate is the
// network's current one: the genesis's, or the newest recovery's. A node
// whose data directory holds an imported ledger with its recovery pending
// records the recovery first (recordRecovery).
func (n *Recorder) CheckServiceIdentity(ctx context.Context, g *genesis.Genesis) error {
	current, err := n.currentServiceCert(g)
	if err != nil {
		return err
	}
	pending, err := readRecoveryPending(n.DataDir)
	if err != nil {
		return err
	}
	if bytes.Equal(current, n.Identity.ServiceCert.Raw) {
		if pending != nil {
			// The recovery was applied; the crash came before the
			// marker went.
			return removeRecoveryPending(n.DataDir)
		}
		return nil
	}
	if pending == nil {
		return fmt.Errorf("%s is not the service certificate of this network", identity.FileServiceCert)
	}
	if !bytes.Equal(pending.PreviousServiceCert, current) || n.Ledger.State().Size != pending.Size {
		return fmt.Errorf("%s: the store no longer holds the imported ledger it describes", fileRecoveryPending)
	}
	fault.Point(fault.RecoverBeforeRecord)
	if err := n.recordRecovery(ctx, g, pending); err != nil {
		return err
	}
	return removeRecoveryPending(n.DataDir)
}

func removeRecoveryPending(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, fileRecoveryPending)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return durable.SyncDir(dataDir)
}

// currentServiceCert is the service certificate (DER) the ledger names
// last: the newest recovery's, else the genesis's.
func (n *Recorder) currentServiceCert(g *genesis.Genesis) ([]byte, error) {
	recs, err := n.Ledger.Recoveries()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return g.ServiceCert, nil
	}
	return recs[len(recs)-1].Recovery.ServiceCert, nil
}

// recordRecovery proposes the recovered network's first transaction and
// waits until it is applied: the previous identity, this one's
// endorsement of it, the service status Recovering, this node's record,
// and the previous network's nodes retired (their keys are no peers').
func (n *Recorder) recordRecovery(ctx context.Context, g *genesis.Genesis, p *recoveryPending) error {
	key, err := cose.NewKey(&n.Identity.ServiceKey.PublicKey)
	if err != nil {
		return err
	}
	endorsement, err := cose.SignEndorsement(rand.Reader, n.Identity.ServiceKey, key, p.PreviousServiceCert)
	if err != nil {
		return err
	}
	var info govwire.ServiceInfo
	if raw, err := n.Ledger.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService)); err == nil {
		_ = json.Unmarshal(raw, &info) // a damaged record is replaced whole
	}
	info.Status = govwire.ServiceRecovering
	info.Cert = string(n.Identity.ServiceCertPEM)
	info.PreviousServiceIdentity = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.PreviousServiceCert}))
	info.RecoveryCount++
	info.PrivateStatePending = p.PrivateState
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return err
	}
	writes := []log.Write{{Map: govwire.MapServiceInfo, Key: []byte(govwire.KeyService), Value: infoJSON}}
	self, err := n.NodeWrites(g.Development)
	if err != nil {
		return err
	}
	writes = append(writes, self...)
	olds, err := join.Records(n.Ledger)
	if err != nil {
		return err
	}
	for id, r := range olds {
		if id == n.NodeID || r.Status == join.NodeRetired {
			continue
		}
		r.Status = join.NodeRetired
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		writes = append(writes, log.Write{Map: govwire.MapNodesInfo, Key: []byte(strconv.FormatUint(id, 10)), Value: v})
	}
	rec := &log.Recovery{
		PreviousServiceCert: p.PreviousServiceCert, ServiceCert: n.Identity.ServiceCert.Raw,
		NoteVerifierKey: n.Identity.NoteVerifier, Endorsement: endorsement,
		PreviousSize: p.Size, RecoveredAt: time.Now().Unix(), Writes: writes,
	}
	for {
		if leader, _ := n.Raft.Leader(); leader {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := n.Ledger.SubmitRecovery(wctx, rec)
			cancel()
			if err == nil {
				n.Log.Info("recovered the service: the new identity endorses the previous one", "previous_size", p.Size, "recovery_count", info.RecoveryCount)
				return nil
			}
			n.Log.Warn("recording the recovery failed; retrying", "err", err)
		}
		if err := pause.For(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// ServiceKeys are the keys that verify this service's receipts: the
// current service key first, then each previous identity's, newest first
// (each endorsed by its successor in the ledger's recoveries).
func (n *Recorder) ServiceKeys() (cose.KeySet, error) {
	certs := [][]byte{n.Identity.ServiceCert.Raw}
	recs, err := n.Ledger.Recoveries()
	if err != nil {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		certs = append(certs, recs[i].Recovery.PreviousServiceCert)
	}
	var keys cose.KeySet
	seen := map[string]bool{}
	for _, der := range certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("a service certificate in the ledger: %w", err)
		}
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return nil, errors.New("a service certificate in the ledger holds no ECDSA key")
		}
		k, err := cose.NewKey(pub)
		if err != nil {
			return nil, err
		}
		if !seen[string(k.Kid)] {
			seen[string(k.Kid)] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}
