// Package registry is the SCITT registration pipeline and the SCRAPI HTTP
// handlers (draft-ietf-scitt-scrapi-10): it checks signed statements, hands
// accepted ones to the ledger, and serves receipts, transparent statements,
// service keys and checkpoints. Governed reads the registration settings
// governance decides (configuration, JS policy, issuer keys) from the
// applied state; what a policy sees of a statement is registry/policyinput's.
// The pipeline's errors become HTTP responses by the problem table here
// (problem.go), which the node's HTTP edge (internal/httpapi) extends with
// its own rules and answers every route by.
package registry

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/stagetime"
	"github.com/charterlog/charter/log"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	gocose "github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/tlog"
)

// Media types.
const (
	ContentTypeCOSE    = "application/cose"
	ContentTypeReceipt = "application/scitt-receipt+cose"
	ContentTypeKeySet  = "application/cose-key-set"
	ContentTypeKey     = "application/cose-key"
)

// Ledger is what the handlers need from the ledger.
type Ledger interface {
	// Register sequences a verified statement; policy is SHA-256 of the
	// registration policy that accepted it (zero: none).
	Register(ctx context.Context, entry [32]byte, statement []byte, policy [32]byte) (log.TxID, error)
	// RegisterMany sequences many verified statements together (a batch)
	// and returns each one's transaction id or error, in order.
	RegisterMany(ctx context.Context, regs []ledger.Registration) ([]log.TxID, []error)
	Pending(entry [32]byte) bool
	LookupEntry(entry [32]byte) (log.TxID, error)
	WaitCovered(ctx context.Context, seqno uint64) error
	Inclusion(seqno uint64) (*ledger.Inclusion, error)
	Proof(seqno uint64) (*ledger.Inclusion, error)
	Record(seqno uint64) (*log.Record, error)
	LatestCheckpoint() (*log.Checkpoint, error)
	Consistency(size1, size2 uint64) (*log.Checkpoint, [][]byte, error)
	// ReadTile returns a C2SP tile of the Merkle tree (log.Tree.ReadTile).
	ReadTile(t tlog.Tile) ([]byte, error)
	// LeafEntries returns the leaf entries of the n leaves from leaf index
	// start.
	LeafEntries(start uint64, n int) ([][32]byte, error)
	// ReadBarrier returns once this node has applied everything committed
	// in the network when it was called, so that a miss after it is real
	// and not a lagging replica's. It fails when that cannot be confirmed.
	ReadBarrier(ctx context.Context) error
}

// Policy is the registration configuration in force.
type Policy struct {
	AllowedAlgs       []gocose.Algorithm
	MaxStatementBytes int
	TrustedCAs        [][32]byte
}

// Service serves the SCITT API.
type Service struct {
	Ledger Ledger
	// Policy is the registration configuration, unless CurrentPolicy is
	// set: then it is asked for every registration (governance changes it
	// while the service runs).
	Policy        Policy
	CurrentPolicy func() (Policy, error)
	// CurrentRegistrationPolicy returns the JS registration policy in
	// force, or nil for none. Optional.
	CurrentRegistrationPolicy func() (*RegistrationPolicy, error)
	// IssuerKey resolves the key of a kid-only statement from the keys
	// governance trusts (set_issuer_key). Optional: without it such
	// statements are refused.
	IssuerKey func(issuer string, kid []byte) (crypto.PublicKey, error)
	// Keys are the service's public keys, newest first.
	Keys cose.KeySet
	// Issuer is the service's name (receipts' iss, the checkpoint origin).
	Issuer string
	// NoteVerifierKey verifies /checkpoint.
	NoteVerifierKey string
	// Wait bounds how long POST /entries waits for a receipt.
	Wait time.Duration
	Log  *slog.Logger

	// BatchMaxStatements and BatchMaxBytes bound a POST /entries/batch
	// request (batch.go); zero: DefaultBatchMaxStatements and
	// DefaultBatchMaxBytes. BatchWorkers bounds the goroutines that check
	// one batch's statements; zero: the CPUs the process may use (the
	// smaller of runtime.NumCPU and GOMAXPROCS).
	BatchMaxStatements int
	BatchMaxBytes      int
	BatchWorkers       int

	chains *cose.ChainCache
	stages *prometheus.HistogramVec
	timing requestStages
}

// requestStages are the cumulative clocks of a registration request's
// steps (stagetime), for the breakdown charterbench prints: a sample of
// the requests timed on the thread's CPU clock.
type requestStages struct {
	// One sampler per path: on one, the request's and the receipt's spans
	// would alternate and one in an even number of spans would always be a
	// receipt's.
	checks, receipts                          *stagetime.Sampler
	decode, chain, signature, policy, receipt *stagetime.Stage
}

func newRequestStages() requestStages {
	return requestStages{
		checks:    &stagetime.Sampler{},
		receipts:  &stagetime.Sampler{},
		decode:    stagetime.New("decode", stagetime.ThreadCPU),    // COSE and CBOR parsing, the profile's checks
		chain:     stagetime.New("chain", stagetime.ThreadCPU),     // the issuer: x5chain and did:x509, or the kid's key
		signature: stagetime.New("signature", stagetime.ThreadCPU), // the statement's signature
		policy:    stagetime.New("policy", stagetime.ThreadCPU),    // the JS registration policy, when one is in force
		receipt:   stagetime.New("receipt", stagetime.ThreadCPU),   // inclusion proof and receipt encoding
	}
}

// Collectors returns the registration metrics; call after Routes.
func (s *Service) Collectors() []prometheus.Collector {
	t := s.timing
	return append([]prometheus.Collector{s.stages}, stagetime.Collectors(t.decode, t.chain, t.signature, t.policy, t.receipt)...)
}

// Routes adds the SCRAPI routes to r.
func (s *Service) Routes(r chi.Router) {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.chains = cose.NewChainCache(4096)
	s.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "charter_registration_stage_seconds",
		Help:    "Time a registration spends in each stage: verify (parse and signature checks), sequence (until applied), checkpoint (until a checkpoint covers it).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"stage"})
	s.timing = newRequestStages()
	r.Post("/entries", s.postEntry)
	r.Post(BatchPath, s.postBatch)
	r.Get("/entries/{id}", s.getEntry)
	r.Get("/entries/{id}/statement", s.getStatement)
	r.Get("/.well-known/scitt-keys", s.getKeySet)
	r.Get("/.well-known/scitt-keys/{kid}", s.getKey)
	r.Get("/.well-known/transparency-configuration", s.getConfiguration)
	r.Get("/jwks", s.getJWKS)
	r.Get("/checkpoint", s.getCheckpoint)
	r.Get("/checkpoint/key", s.getCheckpointKey)
	r.Get("/proofs/consistency", s.getConsistency)
	r.Get("/tile/*", s.getTile)
}

// postEntry registers a signed statement.
//
// SCRAPI draft-10 §2.1.2 (Register Signed Statement): the service "MUST"
// answer 201 with the receipt once it is available, or a redirect to the
// entry's location while registration is running. Charter waits up to Wait
// for the receipt and answers 303 See Other with Retry-After otherwise.
func (s *Service) postEntry(w http.ResponseWriter, r *http.Request) {
	pol, err := s.policy()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	body, ok := readRequest(w, r, ContentTypeCOSE, int64(pol.MaxStatementBytes), "the limit is %d bytes")
	if !ok {
		return
	}
	rp, err := s.registrationPolicy()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	start := time.Now()
	checked := s.checkStatement(r.Context(), body, pol, rp)
	if checked.problem != nil {
		WriteProblem(w, checked.problem)
		return
	}
	entry, policyVersion := checked.entry, checked.policy
	id := hex.EncodeToString(entry[:])
	ctx, cancel := context.WithTimeout(r.Context(), s.Wait)
	defer cancel()
	t1 := time.Now()
	s.stages.WithLabelValues("verify").Observe(t1.Sub(start).Seconds())
	txid, err := s.Ledger.Register(ctx, entry, body, policyVersion)
	if err == nil {
		t2 := time.Now()
		s.stages.WithLabelValues("sequence").Observe(t2.Sub(t1).Seconds())
		err = s.Ledger.WaitCovered(ctx, txid.Seqno)
		s.stages.WithLabelValues("checkpoint").Observe(time.Since(t2).Seconds())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Location", "/entries/"+id)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusSeeOther)
		return
	case err != nil:
		WriteProblem(w, ProblemFor(err))
		return
	}
	rspan := s.timing.receipts.Begin()
	receipt, err := s.receipt(txid.Seqno)
	rspan.Lap(s.timing.receipt)
	rspan.End()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Location", "/entries/"+id)
	w.Header().Set("Content-Type", ContentTypeReceipt)
	w.Header().Set("X-Charter-Transaction-Id", txid.String())
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(receipt)
}

// policy is the registration configuration in force now.
func (s *Service) policy() (Policy, error) {
	if s.CurrentPolicy != nil {
		return s.CurrentPolicy()
	}
	return s.Policy, nil
}

// resolve turns an entry id (hex leaf entry, or a transaction id) into a
// seqno. pending reports a registration this node knows is in flight.
func (s *Service) resolve(ctx context.Context, id string) (seqno uint64, pending bool, p *Problem) {
	if len(id) == 64 {
		// Ids are canonical: lower-case hex only, so one entry has one URL.
		b, err := hex.DecodeString(id)
		if err != nil || strings.ToLower(id) != id {
			return 0, false, badRequest("InvalidEntryId", "entry ids are 64 lower-case hex digits or VIEW.SEQNO")
		}
		var entry [32]byte
		copy(entry[:], b)
		txid, err := s.Ledger.LookupEntry(entry)
		if errors.Is(err, ledger.ErrNotFound) {
			if s.Ledger.Pending(entry) {
				return 0, true, nil
			}
			if p := s.catchUp(ctx); p != nil {
				return 0, false, p
			}
			txid, err = s.Ledger.LookupEntry(entry)
		}
		if errors.Is(err, ledger.ErrNotFound) {
			return 0, false, &Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no entry " + id + "; register the statement again"}
		}
		if err != nil {
			return 0, false, ProblemFor(err)
		}
		return txid.Seqno, false, nil
	}
	txid, err := log.ParseTxID(id)
	if err != nil {
		return 0, false, badRequest("InvalidEntryId", "entry ids are 64 hex digits or VIEW.SEQNO")
	}
	rec, err := s.Ledger.Record(txid.Seqno)
	if errors.Is(err, ledger.ErrNotFound) {
		if p := s.catchUp(ctx); p != nil {
			return 0, false, p
		}
		rec, err = s.Ledger.Record(txid.Seqno)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, false, &Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no transaction " + id}
	}
	if err != nil {
		return 0, false, ProblemFor(err)
	}
	if rec.View != txid.View || rec.Type != log.TxRegistration {
		return 0, false, &Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "transaction " + id + " is not a registration"}
	}
	return txid.Seqno, false, nil
}

// catchUp makes this node current before it answers "not found": a replica
// that is behind must not deny an entry the network has.
func (s *Service) catchUp(ctx context.Context) *Problem {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.Ledger.ReadBarrier(ctx); err != nil {
		return &Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
			Detail: "cannot confirm the entry is unknown: this node cannot reach a quorum; retry", RetryAfter: 1}
	}
	return nil
}

// registrationPolicy is the registration policy in force, nil when none
// is.
func (s *Service) registrationPolicy() (*RegistrationPolicy, error) {
	if s.CurrentRegistrationPolicy == nil {
		return nil, nil
	}
	return s.CurrentRegistrationPolicy()
}

func (s *Service) receipt(seqno uint64) ([]byte, error) {
	inc, err := s.Ledger.Proof(seqno)
	if err != nil {
		return nil, err
	}
	return receiptFor(inc)
}

func receiptFor(inc *ledger.Inclusion) ([]byte, error) {
	return cose.NewInclusionReceipt(inc.Checkpoint.Protected, inc.Checkpoint.Signature, inc.Checkpoint.TreeSize, inc.LeafIndex, inc.Path)
}

// entryReady returns the inclusion material of the entry named in the
// request, or writes the response (302 while pending, a problem otherwise)
// and returns nil.
func (s *Service) entryReady(w http.ResponseWriter, r *http.Request) *ledger.Inclusion {
	id := chi.URLParam(r, "id")
	seqno, pending, p := s.resolve(r.Context(), id)
	if p != nil {
		WriteProblem(w, p)
		return nil
	}
	if !pending {
		inc, err := s.Ledger.Proof(seqno)
		if err == nil {
			return inc
		}
		if !errors.Is(err, ledger.ErrNotCovered) {
			WriteProblem(w, ProblemFor(err))
			return nil
		}
	}
	// SCRAPI draft-10: 302 Found with Location and Retry-After while the
	// registration is still running.
	w.Header().Set("Location", "/entries/"+id)
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusFound)
	return nil
}

// readyReceipt is the receipt of the entry r names, once a checkpoint
// covers it; else it has written the answer (entryReady's, or the problem)
// and returns false.
func (s *Service) readyReceipt(w http.ResponseWriter, r *http.Request) (*ledger.Inclusion, []byte, bool) {
	inc := s.entryReady(w, r)
	if inc == nil {
		return nil, nil, false
	}
	span := s.timing.receipts.Begin()
	receipt, err := receiptFor(inc)
	span.Lap(s.timing.receipt)
	span.End()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return nil, nil, false
	}
	return inc, receipt, true
}

func (s *Service) getEntry(w http.ResponseWriter, r *http.Request) {
	_, receipt, ok := s.readyReceipt(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", ContentTypeReceipt)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(receipt)
}

func (s *Service) getStatement(w http.ResponseWriter, r *http.Request) {
	inc, receipt, ok := s.readyReceipt(w, r)
	if !ok {
		return
	}
	rec, err := s.Ledger.Record(inc.Seqno)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	ts, err := cose.AttachReceipts(rec.Body, receipt)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", ContentTypeCOSE)
	_, _ = w.Write(ts)
}

// latestCheckpoint returns the newest checkpoint, or writes the problem
// (404 while the ledger is empty) and returns nil.
func (s *Service) latestCheckpoint(w http.ResponseWriter) *log.Checkpoint {
	cp, err := s.Ledger.LatestCheckpoint()
	if errors.Is(err, ledger.ErrNotFound) {
		WriteProblem(w, &Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no checkpoint yet: the ledger has no transactions"})
		return nil
	}
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return nil
	}
	return cp
}

func (s *Service) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp := s.latestCheckpoint(w)
	if cp == nil {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(cp.Note)
}

func (s *Service) getCheckpointKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s.NoteVerifierKey+"\n")
}

// getConsistency serves an RFC 9942 consistency receipt (vdp -2) from tree
// size `from` to the checkpointed size `to` (default: the newest).
func (s *Service) getConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := strconv.ParseUint(q.Get("from"), 10, 64)
	if err != nil || from == 0 {
		WriteProblem(w, badRequest("InvalidInput", "from must be a positive tree size"))
		return
	}
	var to uint64
	if v := q.Get("to"); v != "" {
		to, err = strconv.ParseUint(v, 10, 64)
		if err != nil || to == 0 {
			WriteProblem(w, badRequest("InvalidInput", "to must be a positive tree size"))
			return
		}
	} else {
		cp := s.latestCheckpoint(w)
		if cp == nil {
			return
		}
		to = cp.TreeSize
	}
	if from > to {
		WriteProblem(w, badRequest("InvalidInput", fmt.Sprintf("from (%d) is beyond to (%d)", from, to)))
		return
	}
	cp, path, err := s.Ledger.Consistency(from, to)
	if errors.Is(err, ledger.ErrNotFound) {
		WriteProblem(w, badRequest("InvalidInput", fmt.Sprintf("no checkpoint of tree size %d; to must be the size of a checkpoint", to)))
		return
	}
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	receipt, err := cose.NewConsistencyReceipt(cp.Protected, cp.Signature, from, to, path)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", ContentTypeReceipt)
	_, _ = w.Write(receipt)
}

// EntryID is the SCRAPI entry id of a statement: hex of its leaf entry.
func EntryID(leafEntry [32]byte) string { return hex.EncodeToString(leafEntry[:]) }
