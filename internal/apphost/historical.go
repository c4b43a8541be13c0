package apphost

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// historical is ccf.historical. A transaction's historical state is
// ready once a checkpoint covers it; its KV holds the writes of that
// transaction only (not the whole state as of it), decrypted.
type historical struct{ h *Host }

func (h historical) StateRange(_, from, to uint64, _ time.Duration) ([]app.HistoricalState, bool, error) {
	if from == 0 || to < from || to-from >= 1000 {
		return nil, false, fmt.Errorf("historical range %d..%d: want 1 ≤ from ≤ to, at most 1000", from, to)
	}
	if st := h.h.cfg.Ledger.State(); to > st.Size {
		return nil, false, nil
	}
	c, err := h.h.Cipher()
	if err != nil {
		return nil, false, err
	}
	var out []app.HistoricalState
	for s := from; s <= to; s++ {
		hs, err := h.h.historicalState(s, c)
		if errors.Is(err, ledger.ErrNotCovered) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, *hs)
	}
	return out, true, nil
}

func (historical) DropCachedStates(uint64) (bool, error) {
	// Nothing is cached: states are built from the ledger on each request.
	return false, nil
}

// historicalState is the state of transaction seqno with its receipt.
func (h *Host) historicalState(seqno uint64, c *Cipher) (*app.HistoricalState, error) {
	rec, err := h.cfg.Ledger.Record(seqno)
	if err != nil {
		return nil, err
	}
	inc, err := h.cfg.Ledger.Proof(seqno)
	if err != nil {
		return nil, err
	}
	var writes []log.Write
	var claims []byte
	switch rec.Type {
	case log.TxApp:
		t, err := log.UnmarshalAppTx(rec.Body)
		if err != nil {
			return nil, err
		}
		writes, claims = t.Writes, t.ClaimsDigest
	case log.TxWrites:
		ws, err := log.UnmarshalWriteSet(rec.Body)
		if err != nil {
			return nil, err
		}
		writes = ws.Writes
	}
	kv, err := newTxWritesState(c, writes)
	if err != nil {
		return nil, err
	}
	body := sha256.Sum256(rec.Body)
	receipt := app.Receipt{
		Signature: base64.StdEncoding.EncodeToString(inc.Checkpoint.Signature),
		Cert:      string(h.cfg.ServiceCertPEM),
		NodeID:    fmt.Sprint(h.cfg.NodeID),
		Proof:     proofSteps(inc.LeafIndex, inc.Checkpoint.TreeSize, inc.Path),
		LeafComponents: app.LeafComponents{
			WriteSetDigest: hex.EncodeToString(body[:]),
			CommitEvidence: fmt.Sprintf("charter:%s:%x", rec.TxID(), rec.Entry),
		},
	}
	if len(claims) > 0 {
		receipt.LeafComponents.ClaimsDigest = hex.EncodeToString(claims)
	}
	return &app.HistoricalState{TxID: rec.TxID().String(), Receipt: receipt, KV: kv}, nil
}

// proofSteps orients an RFC 9162 inclusion path as CCF's receipt proof:
// each hash is the left or the right sibling on the way up.
func proofSteps(index, size uint64, path [][]byte) []app.ProofStep {
	var out []app.ProofStep
	fn, sn := index, size-1
	for _, p := range path {
		h := hex.EncodeToString(p)
		if fn%2 == 1 || fn == sn {
			out = append(out, app.ProofStep{Left: h})
			if fn%2 == 0 {
				for fn%2 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			out = append(out, app.ProofStep{Right: h})
		}
		fn >>= 1
		sn >>= 1
	}
	return out
}

// These are what HistoricalFor says of a transaction id whose
// state it cannot give (the edge answers 202, 400 and 404 for them).
var (
	// ErrTxPending: the transaction is not committed, or no checkpoint
	// covers it, yet; ask again.
	ErrTxPending = errors.New("apphost: historical state not available yet")
	// ErrTxIDInvalid: the id is not of the form view.seqno.
	ErrTxIDInvalid = errors.New("apphost: malformed transaction id")
	// ErrTxUnknown: no such transaction was committed.
	ErrTxUnknown = errors.New("apphost: unknown transaction")
)

// HistoricalFor resolves the x-ms-ccf-transaction-id of a request to a
// historical endpoint: the state, or ErrTxPending, ErrTxIDInvalid,
// ErrTxUnknown, or another error reading the ledger.
func (h *Host) HistoricalFor(raw string, c *Cipher) (*app.HistoricalState, error) {
	txid, err := log.ParseTxID(raw)
	if err != nil {
		return nil, ErrTxIDInvalid
	}
	rec, err := h.cfg.Ledger.Record(txid.Seqno)
	if errors.Is(err, ledger.ErrNotFound) {
		if txid.Seqno > h.cfg.Ledger.State().Size {
			return nil, ErrTxPending
		}
		return nil, ErrTxUnknown
	}
	if err != nil || rec.View != txid.View {
		return nil, ErrTxUnknown
	}
	hs, err := h.historicalState(txid.Seqno, c)
	if errors.Is(err, ledger.ErrNotCovered) {
		return nil, ErrTxPending
	}
	if err != nil {
		return nil, err
	}
	return hs, nil
}
