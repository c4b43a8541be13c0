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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/identity"
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
