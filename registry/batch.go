package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/ledger"
)

// BatchPath is the batch registration route. It is below /entries, where
// SCRAPI's registrations are, and cannot be an entry: entry ids are 64 hex
// digits or VIEW.SEQNO, never "batch", and GET /entries/{id} is another
// method.
const BatchPath = "/entries/batch"

// ContentTypeBatch is the media type of a batch request and of its answer.
const ContentTypeBatch = "application/cbor"

// Batch bounds. The defaults apply when Service's fields are zero; a node
// takes them from its configuration (internal/config).
const (
	// DefaultBatchMaxStatements bounds the statements in one batch.
	DefaultBatchMaxStatements = config.DefaultBatchMaxStatements
	// DefaultBatchMaxBytes bounds a batch request's body.
	DefaultBatchMaxBytes = config.DefaultBatchMaxBytes
	// BatchMaxStatementsLimit is the largest BatchMaxStatements may be:
	// the batch decoder's array bound.
	BatchMaxStatementsLimit = config.MaxBatchStatements
)

// The batch request's errors, answered by the problem table (problem.go).
var (
	// ErrBatchMalformed: the body is not a CBOR array of byte strings.
	ErrBatchMalformed = errors.New("registry: the batch is not a CBOR array of one or more byte strings, each a signed statement")
	// ErrBatchTooMany: the batch holds more statements than allowed.
	ErrBatchTooMany = errors.New("registry: the batch holds too many statements")
)

// batchDecMode checks a batch body's structure under the project's CBOR
// policy (no indefinite lengths, no tags outside the statements' bytes,
// nesting bounded): the body is one array of byte strings, so depth 4 is
// the library's least and more than enough.
var batchDecMode = cbor.NewDecMode(cbor.Options{MaxNestedLevels: 4, MaxArrayElements: BatchMaxStatementsLimit, RefuseTags: true})

// DecodeBatch splits a batch body, a CBOR array of byte strings, into the
// signed statements it holds, in order, without copying them. The count in
// the array's head is checked against maxStatements before anything else is
// read; then the whole body must be well-formed under the CBOR policy, and
// every element a byte string. The statements themselves are not parsed
// here: each is checked as POST /entries checks one.
func DecodeBatch(body []byte, maxStatements int) ([][]byte, error) {
	major, n, _, ok := cbor.ReadHead(body)
	if !ok || major != cbor.MajorArray {
		return nil, fmt.Errorf("%w: the body does not start with a definite-length array", ErrBatchMalformed)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the array is empty", ErrBatchMalformed)
	}
	if n > uint64(maxStatements) {
		return nil, fmt.Errorf("%w: %d statements; the limit is %d", ErrBatchTooMany, n, maxStatements)
	}
	if err := batchDecMode.Wellformed(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBatchMalformed, err)
	}
	// Well-formed: the elements are only split, in place.
	_, _, off, _ := cbor.ReadHead(body)
	rest := body[off:]
	out := make([][]byte, 0, n)
	for i := range n {
		item, after, err := cbor.Split(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: element %d: %v", ErrBatchMalformed, i, err)
		}
		stmt, err := cbor.BytesContent(item)
		if err != nil {
			return nil, fmt.Errorf("%w: element %d is not a byte string", ErrBatchMalformed, i)
		}
		out = append(out, stmt)
		rest = after
	}
	return out, nil
}

// BatchResult is one statement's outcome in a batch's answer, in the
// request's order. A registered statement has EntryID and Receipt (and
// TxID); one accepted whose receipt was not ready within the wait has
// EntryID only (GET /entries/{id} for it); a refused one is concise
// problem details (RFC 9290: Title, Detail), as POST /entries would have
// answered it. Its CBOR keys keep the two apart: positive for a
// registration, negative for a problem.
type BatchResult struct {
	EntryID string `cbor:"1,keyasint,omitempty"`
	Receipt []byte `cbor:"2,keyasint,omitempty"`
	TxID    string `cbor:"3,keyasint,omitempty"`
	Title   string `cbor:"-1,keyasint,omitempty"`
	Detail  string `cbor:"-2,keyasint,omitempty"`
}

// batchLimits are the bounds in force: the Service's, or the defaults.
func (s *Service) batchLimits() (maxStatements, maxBytes int) {
	maxStatements, maxBytes = s.BatchMaxStatements, s.BatchMaxBytes
	if maxStatements <= 0 {
		maxStatements = DefaultBatchMaxStatements
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBatchMaxBytes
	}
	return min(maxStatements, BatchMaxStatementsLimit), maxBytes
}

// batchBodyLimit bounds a batch body: the configured cap, or less when the
// largest batch of the largest statements (each with a 9-byte head, after
// the array's) is smaller.
func batchBodyLimit(maxStatements, maxBytes, maxStatementBytes int) int64 {
	return min(int64(maxBytes), int64(maxStatements)*(int64(maxStatementBytes)+9)+9)
}

// checkedStatement is one batch statement after the checks POST /entries
// makes: its entry and policy version, or the problem that refused it.
type checkedStatement struct {
	entry   [32]byte
	policy  [32]byte
	problem *Problem
}

// postBatch registers a batch of signed statements: each is checked as
// POST /entries checks one, the checks spread over a bounded pool of
// workers (BatchWorkers, default the CPUs), the accepted ones handed to
// the ledger in one call, and the answer lists every statement's outcome
// in request order. Only a request that is bad as a whole (media type,
// size, count, not an array of byte strings) is answered with a problem;
// it writes nothing.
func (s *Service) postBatch(w http.ResponseWriter, r *http.Request) {
	pol, err := s.policy()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	maxStatements, maxBytes := s.batchLimits()
	body, ok := readRequest(w, r, ContentTypeBatch, batchBodyLimit(maxStatements, maxBytes, pol.MaxStatementBytes), "a batch is at most %d bytes")
	if !ok {
		return
	}
	stmts, err := DecodeBatch(body, maxStatements)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	// One policy for the whole batch, read once: governance may change it
	// meanwhile, and a batch is judged by one version of it.
	rp, err := s.registrationPolicy()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	checked := s.checkBatch(r.Context(), stmts, pol, rp)
	results := s.registerBatch(r.Context(), stmts, checked)
	out, err := cbor.Marshal(results)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", ContentTypeBatch)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// checkBatch checks every statement as postEntry does (parse, chain and
// issuer key, signature, registration policy), in parallel over a bounded
// pool of workers: the signature checks are most of a registration's CPU,
// and one request's statements are independent. Each worker takes the next
// unchecked index, so a slow statement holds up one worker only.
func (s *Service) checkBatch(ctx context.Context, stmts [][]byte, pol Policy, rp *RegistrationPolicy) []checkedStatement {
	out := make([]checkedStatement, len(stmts))
	workers := s.BatchWorkers
	if workers <= 0 {
		// The CPUs, not the Go processors: a node runs one processor
		// more than its CPUs so that the network and the ledger find
		// one free while signatures are checked (cmd/charterd).
		workers = min(runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}
	workers = min(workers, len(stmts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(stmts) {
					return
				}
				if err := ctx.Err(); err != nil {
					// The client is gone: the rest is not worth a
					// signature check.
					out[i] = checkedStatement{problem: ProblemFor(err)}
					continue
				}
				out[i] = s.checkStatement(ctx, stmts[i], pol, rp)
			}
		}()
	}
	wg.Wait()
	return out
}

// checkStatement is a registration's checks of one statement, for
// POST /entries and each statement of a batch: parse, chain and issuer
// key, signature, registration policy (rp, nil when none is in force),
// each stage timed for the stage breakdown.
func (s *Service) checkStatement(ctx context.Context, body []byte, pol Policy, rp *RegistrationPolicy) checkedStatement {
	span := s.timing.checks.Begin()
	defer span.End()
	stmt, err := cose.ParseStatement(body, cose.ParseOptions{MaxSize: pol.MaxStatementBytes, Chains: s.chains})
	span.Lap(s.timing.decode)
	if err != nil {
		return checkedStatement{problem: ProblemFor(err)}
	}
	iss, err := stmt.VerifyIssuer(cose.VerifyOptions{AllowedAlgs: pol.AllowedAlgs, TrustedCAs: pol.TrustedCAs, Chains: s.chains, IssuerKey: s.IssuerKey})
	span.Lap(s.timing.chain)
	if err == nil {
		err = stmt.VerifySignature(iss.Key)
		span.Lap(s.timing.signature)
	}
	if err != nil {
		return checkedStatement{problem: ProblemFor(err)}
	}
	var c checkedStatement
	if rp != nil {
		p := evaluatePolicy(ctx, rp, stmt)
		span.Lap(s.timing.policy)
		if p != nil {
			return checkedStatement{problem: p}
		}
		c.policy = rp.Version
	}
	c.entry = stmt.LeafEntry()
	return c
}

// registerBatch hands the accepted statements to the ledger in one call,
// waits (up to Wait) for a checkpoint covering them all, and returns every
// statement's result in order.
func (s *Service) registerBatch(ctx context.Context, stmts [][]byte, checked []checkedStatement) []BatchResult {
	results := make([]BatchResult, len(stmts))
	var regs []ledger.Registration
	var index []int // regs[j] is statement index[j]
	for i, c := range checked {
		if c.problem != nil {
			results[i] = problemResult(c.problem)
			continue
		}
		regs = append(regs, ledger.Registration{Entry: c.entry, Statement: stmts[i], Policy: c.policy})
		index = append(index, i)
	}
	if len(regs) == 0 {
		return results
	}
	ctx, cancel := context.WithTimeout(ctx, s.Wait)
	defer cancel()
	txids, errs := s.Ledger.RegisterMany(ctx, regs)
	var last uint64
	for j, err := range errs {
		if err == nil {
			last = max(last, txids[j].Seqno)
		}
	}
	// A checkpoint covers a prefix of the ledger: the one that covers the
	// last of them covers them all.
	var waitErr error
	if last > 0 {
		waitErr = s.Ledger.WaitCovered(ctx, last)
	}
	rspan := s.timing.receipts.Begin()
	defer rspan.End()
	for j, i := range index {
		id := EntryID(regs[j].Entry)
		err := errs[j]
		if err == nil {
			// An early one may be covered though the wait for the last
			// ended.
			receipt, rerr := s.receipt(txids[j].Seqno)
			rspan.Lap(s.timing.receipt)
			if rerr == nil {
				results[i] = BatchResult{EntryID: id, Receipt: receipt, TxID: txids[j].String()}
				continue
			}
			err = rerr
			if waitErr != nil && errors.Is(rerr, ledger.ErrNotCovered) {
				err = waitErr
			}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Accepted, receipt not ready within the wait: as postEntry's
			// 303, the client polls GET /entries/{id}.
			results[i] = BatchResult{EntryID: id}
			continue
		}
		results[i] = problemResult(ProblemFor(err))
	}
	return results
}

func problemResult(p *Problem) BatchResult { return BatchResult{Title: p.Title, Detail: p.Detail} }
