package node

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
)

// txParam reads ?transaction_id= and the record it names, or writes the
// problem and returns nil.
func (n *Node) txParam(w http.ResponseWriter, r *http.Request) *log.Record {
	raw := r.URL.Query().Get("transaction_id")
	txid, err := log.ParseTxID(raw)
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidTransactionId", Detail: "transaction_id " + strconv.Quote(raw) + ": " + err.Error()})
		return nil
	}
	rec, err := n.ledger.Record(txid.Seqno)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && rec.View != txid.View) {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no committed transaction " + txid.String() + " on this node"})
		return nil
	}
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return nil
	}
	return rec
}

// getLedgerTx serves a transaction's record (canonical CBOR, see
// spec/formats.md): with its receipt, anyone can check offline that it is
// in the ledger (charter tx verify).
func (n *Node) getLedgerTx(w http.ResponseWriter, r *http.Request) {
	rec := n.txParam(w, r)
	if rec == nil {
		return
	}
	b, err := log.MarshalRecord(rec)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(b)
}

// getReceipt serves the receipt of any transaction (registrations,
// governance, checkpoints): its leaf under the first checkpoint covering it.
func (n *Node) getReceipt(w http.ResponseWriter, r *http.Request) {
	rec := n.txParam(w, r)
	if rec == nil {
		return
	}
	inc, err := n.ledger.Proof(rec.Seqno)
	if errors.Is(err, ledger.ErrNotCovered) {
		w.Header().Set("Retry-After", "1")
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "NotYetCovered", Detail: "no checkpoint covers the transaction yet; retry shortly", RetryAfter: 1})
		return
	}
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	b, err := cose.NewInclusionReceipt(inc.Checkpoint.Protected, inc.Checkpoint.Signature, inc.Checkpoint.TreeSize, inc.LeafIndex, inc.Path)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", registry.ContentTypeReceipt)
	_, _ = w.Write(b)
}
