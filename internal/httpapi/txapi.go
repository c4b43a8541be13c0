package httpapi

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
func (s *Server) txParam(w http.ResponseWriter, r *http.Request) *log.Record {
	raw := r.URL.Query().Get("transaction_id")
	txid, err := log.ParseTxID(raw)
	if err != nil {
		writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidTransactionId", Code: "InvalidQueryParameterValue", Detail: "transaction_id " + strconv.Quote(raw) + ": " + err.Error()})
		return nil
	}
	rec, err := s.cfg.Ledger.Record(txid.Seqno)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && rec.View != txid.View) {
		writeError(w, r, notFound("no committed transaction "+txid.String()+" on this node"))
		return nil
	}
	if err != nil {
		writeError(w, r, problemFor(err))
		return nil
	}
	return rec
}

// getLedgerTx serves a transaction's record (canonical CBOR, see
// spec/formats.md): with its receipt, anyone can check offline that it is
// in the ledger (charter tx verify).
func (s *Server) getLedgerTx(w http.ResponseWriter, r *http.Request) {
	rec := s.txParam(w, r)
	if rec == nil {
		return
	}
	b, err := log.MarshalRecord(rec)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(b)
}

// getReceipt serves the receipt of any transaction (registrations,
// governance, checkpoints): its leaf under the first checkpoint covering it.
func (s *Server) getReceipt(w http.ResponseWriter, r *http.Request) {
	rec := s.txParam(w, r)
	if rec == nil {
		return
	}
	inc, err := s.cfg.Ledger.Proof(rec.Seqno)
	if errors.Is(err, ledger.ErrNotCovered) {
		w.Header().Set("Retry-After", "1")
		writeError(w, r, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "NotYetCovered", Detail: "no checkpoint covers the transaction yet; retry shortly", RetryAfter: 1})
		return
	}
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	b, err := cose.NewInclusionReceipt(inc.Checkpoint.Protected, inc.Checkpoint.Signature, inc.Checkpoint.TreeSize, inc.LeafIndex, inc.Path)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	w.Header().Set("Content-Type", registry.ContentTypeReceipt)
	_, _ = w.Write(b)
}

// maxRangeRecords bounds one GET /node/ledger/range.
const maxRangeRecords = 1000

// getLedgerRange serves committed transaction records from..to (seqnos,
// inclusive, at most maxRangeRecords) as a CBOR array, for auditors who
// download the ledger (charter ledger export). Each record can be checked
// against the tree with its receipt.
func (s *Server) getLedgerRange(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := strconv.ParseUint(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseUint(q.Get("to"), 10, 64)
	size := s.cfg.Ledger.State().Size
	if err1 != nil || err2 != nil || from == 0 || to < from {
		writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidInput", Detail: "want from and to, seqnos with 1 ≤ from ≤ to"})
		return
	}
	if to-from+1 > maxRangeRecords {
		to = from + maxRangeRecords - 1
	}
	if to > size {
		to = size
	}
	if from > size {
		writeError(w, r, notFound("the ledger has "+strconv.FormatUint(size, 10)+" transactions on this node"))
		return
	}
	recs := make([]*log.Record, 0, to-from+1)
	for seq := from; seq <= to; seq++ {
		rec, err := s.cfg.Ledger.Record(seq)
		if err != nil {
			writeError(w, r, problemFor(err))
			return
		}
		recs = append(recs, rec)
	}
	b, err := log.MarshalRecords(recs)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Charter-Ledger-Size", strconv.FormatUint(size, 10))
	_, _ = w.Write(b)
}
