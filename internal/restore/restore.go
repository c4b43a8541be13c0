// Package restore recovers a lost network from its ledger files
// (`charterd recover`, spec/recovery.md): Import verifies a previous
// network's ledger files and imports them into a new data directory, and
// marks the recovery pending; once the new node runs, Recorder records
// the recovery transaction (the new identity endorsing the previous one)
// and gives the keys that verify the service's receipts across its
// identities. The secrets the members' shares recover are
// internal/ledgersecrets'. It speaks no HTTP and knows nothing of the
// node: the node hands it the ledger and raft through interfaces.
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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/internal/ledgerverify"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	"go.etcd.io/raft/v3"
)

// ErrNetworkExists reports a data directory that already holds a network
// (internal/node's Open refuses one with the same error).
var ErrNetworkExists = errors.New("this data directory already holds a network")

// ErrRecoverInput reports ledger files or a data directory that a
// recovery refuses; nothing is written.
var ErrRecoverInput = errors.New("cannot recover")

// fileRecoveryPending marks a data directory whose store holds an imported
// ledger whose recovery transaction is not applied yet.
const fileRecoveryPending = "recovery_pending.json"

// maxUnsignedTail bounds the transactions held in memory after the newest
// checkpoint while importing: they are imported only once a checkpoint
// signs them, and ledger files are untrusted input.
const maxUnsignedTail = 256 << 20

// recoveryPending is fileRecoveryPending's content.
type recoveryPending struct {
	// PreviousServiceCert (DER) is the identity the imported ledger ends
	// with; Size its length; Issuer its service name.
	PreviousServiceCert []byte `json:"previous_service_cert"`
	Size                uint64 `json:"size"`
	Issuer              string `json:"issuer"`
	// PrivateState: the ledger wrote private maps, which need the members'
	// recovery shares to read back.
	PrivateState bool `json:"private_state"`
}

// ImportReport is what Import imported.
type ImportReport struct {
	Transactions uint64 // imported: up to and including the newest checkpoint
	Dropped      uint64 // after the newest checkpoint: signed by nothing, left out
	Issuer       string
	Recoveries   uint64 // earlier recoveries in the ledger
	// Resumed: an earlier run had imported the ledger already.
	Resumed bool
}

// Import prepares cfg's data directory for `charterd recover`: it
// verifies the ledger files in ledgerDir (internal/ledgerverify: every
// record, the tree, every checkpoint's signatures, the identities across
// earlier recoveries), refuses them unless their current service identity
// is previousCertPEM, and imports them into a new store in the data
// directory, verbatim (ledger.Import), up to and including the newest
// checkpoint: what no checkpoint signs is left out, as CCF truncates a
// recovered ledger at its last signature.
//
// Crashes: the import goes into DATA/store.recovering, synced at the end;
// then fileRecoveryPending is written; then the staging store is renamed
// to DATA/store. A crash before the rename leaves no store: a re-run
// discards the staging store (and a marker without a store) and imports
// again. After the rename a re-run finds the store and the marker with no
// raft state yet, and completes (Resumed); once the node ran, the store
// has raft state and a re-run is refused (start the node instead).
func Import(cfg config.Config, ledgerDir string, previousCertPEM []byte, logger *slog.Logger) (*ImportReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Join {
		return nil, fmt.Errorf("%w: the configuration is a node that joined a network (join: true); a recovery starts a new network's first node", ErrRecoverInput)
	}
	prev, err := identity.ParseCertPEM(previousCertPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: the previous service certificate: %v", ErrRecoverInput, err)
	}
	storeDir := filepath.Join(cfg.DataDir, "store")
	staging := storeDir + ".recovering"
	marker := filepath.Join(cfg.DataDir, fileRecoveryPending)
	pending, err := readRecoveryPending(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(storeDir); err == nil {
		if pending == nil {
			return nil, fmt.Errorf("%w: %s already holds a network (%s); recover into an empty data directory", ErrNetworkExists, cfg.DataDir, storeDir)
		}
		ran, err := storeHasRaft(storeDir, logger)
		if err != nil {
			return nil, err
		}
		if ran {
			return nil, fmt.Errorf("%w: %s holds a recovered network that has run; start it with `charterd start`", ErrNetworkExists, cfg.DataDir)
		}
		if !bytes.Equal(pending.PreviousServiceCert, prev.Raw) {
			return nil, fmt.Errorf("%w: %s holds the import of another service's ledger", ErrRecoverInput, cfg.DataDir)
		}
		return &ImportReport{Transactions: pending.Size, Issuer: pending.Issuer, Resumed: true}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, f := range []string{identity.FileServiceCert, "ledger"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s holds %s of another service; recover into an empty data directory", ErrRecoverInput, cfg.DataDir, f)
		}
	}
	// What a crashed import left: never renamed, so never used.
	if err := os.RemoveAll(staging); err != nil {
		return nil, err
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	rep, p, err := importInto(staging, ledgerDir, prev.Raw, logger)
	if err != nil {
		if rerr := os.RemoveAll(staging); rerr != nil {
			logger.Error("removing the staging store", "dir", staging, "err", rerr)
		}
		return nil, err
	}
	if cfg.Issuer != "" && cfg.Issuer != rep.Issuer {
		_ = os.RemoveAll(staging)
		return nil, fmt.Errorf("%w: the configuration names issuer %q, the ledger's service is %q (a recovered service keeps its name)", ErrRecoverInput, cfg.Issuer, rep.Issuer)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(marker, b, 0o600); err != nil {
		return nil, err
	}
	fault.Point(fault.RecoverImported)
	if err := os.Rename(staging, storeDir); err != nil {
		return nil, err
	}
	if err := durable.SyncDir(cfg.DataDir); err != nil {
		return nil, err
	}
	fault.Point(fault.RecoverRenamed)
	return rep, nil
}

// importInto verifies the ledger files in ledgerDir and imports them into
// a new store at dir, in one pass: each checkpoint, once verified, brings
// in the transactions before it.
func importInto(dir, ledgerDir string, prevDER []byte, logger *slog.Logger) (*ImportReport, *recoveryPending, error) {
	st, err := store.Open(dir, logger)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	l, err := ledger.Open(st, ledger.Config{}, logger)
	if err != nil {
		return nil, nil, err
	}
	v := ledgerverify.New(prevDER)
	var tail [][]byte
	var tailBytes int
	p := &recoveryPending{PreviousServiceCert: prevDER}
	_, err = ledgerfiles.Scan(ledgerDir, func(seqno uint64, raw []byte) error {
		if err := v.Add(seqno, raw); err != nil {
			return err
		}
		rec := append([]byte(nil), raw...)
		tail = append(tail, rec)
		tailBytes += len(rec)
		if tailBytes > maxUnsignedTail {
			return fmt.Errorf("%w: more than %d MiB of transactions that no checkpoint signs", ErrRecoverInput, maxUnsignedTail>>20)
		}
		r, err := log.UnmarshalRecord(raw)
		if err != nil {
			return err
		}
		if writesPrivate(r) {
			p.PrivateState = true
		}
		if r.Type != log.TxCheckpoint {
			return nil
		}
		// Verified: the checkpoint signs everything before it.
		if err := l.Import(tail, false); err != nil {
			return err
		}
		tail, tailBytes = tail[:0], 0
		fault.Point(fault.RecoverImportHalf)
		return nil
	})
	if err != nil {
		if errors.Is(err, ledgerfiles.ErrNoLedger) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: no ledger in %s: %v", ErrRecoverInput, ledgerDir, err)
		}
		return nil, nil, fmt.Errorf("%w: the ledger files in %s do not verify: %v", ErrRecoverInput, ledgerDir, err)
	}
	rep, err := v.Finish()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrRecoverInput, err)
	}
	if !bytes.Equal(rep.ServiceCert, prevDER) {
		return nil, nil, fmt.Errorf("%w: the given previous service certificate is not the one these files end with (a later recovery replaced it)", ErrRecoverInput)
	}
	if rep.Checkpoints == 0 {
		return nil, nil, fmt.Errorf("%w: no checkpoint signs any transaction in %s", ErrRecoverInput, ledgerDir)
	}
	// Syncs the store's log, and every unsynced batch before it.
	if err := l.Import(nil, true); err != nil {
		return nil, nil, err
	}
	p.Size, p.Issuer = l.State().Size, rep.Issuer
	if p.Size != rep.CheckpointSeqno {
		return nil, nil, fmt.Errorf("ledger: imported %d transactions, the newest checkpoint is %d", p.Size, rep.CheckpointSeqno)
	}
	logger.Info("imported the previous ledger", "transactions", p.Size, "unsigned_dropped", rep.Transactions-p.Size, "recoveries", rep.Recoveries)
	return &ImportReport{Transactions: p.Size, Dropped: rep.Transactions - p.Size, Issuer: rep.Issuer, Recoveries: rep.Recoveries}, p, nil
}

// writesPrivate reports whether a transaction writes a private map.
func writesPrivate(r *log.Record) bool {
	var ws []log.Write
	switch r.Type {
	case log.TxApp:
		t, err := log.UnmarshalAppTx(r.Body)
		if err != nil {
			return false
		}
		ws = t.Writes
	case log.TxWrites:
		s, err := log.UnmarshalWriteSet(r.Body)
		if err != nil {
			return false
		}
		ws = s.Writes
	}
	for _, w := range ws {
		if !strings.HasPrefix(w.Map, "public:") {
			return true
		}
	}
	return false
}

func storeHasRaft(dir string, logger *slog.Logger) (bool, error) {
	st, err := store.Open(dir, logger)
	if err != nil {
		return false, err
	}
	defer st.Close()
	rlog, err := st.RaftLog()
	if err != nil {
		return false, err
	}
	last, _ := rlog.LastIndex()
	return last > 0 || !raft.IsEmptyHardState(rlog.HardState()), nil
}

func readRecoveryPending(dataDir string) (*recoveryPending, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, fileRecoveryPending))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p recoveryPending
	if err := json.Unmarshal(b, &p); err != nil || len(p.PreviousServiceCert) == 0 {
		return nil, fmt.Errorf("%s: damaged (%v); recover again into an empty data directory", fileRecoveryPending, err)
	}
	return &p, nil
}

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
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
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

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
