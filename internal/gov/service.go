package gov

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
)

// Errors a governance operation returns; the HTTP layer maps them.
var (
	ErrNotActive        = errors.New("gov: the member is not active")
	ErrInvalidProposal  = errors.New("gov: the constitution refused the proposal")
	ErrProposalNotFound = errors.New("gov: no such proposal")
	ErrProposalClosed   = errors.New("gov: the proposal is not open")
	ErrNotProposer      = errors.New("gov: only the proposer may withdraw a proposal")
	ErrWrongDigest      = errors.New("gov: the acknowledged state digest is not the one issued")
	ErrBadBallot        = errors.New("gov: the ballot is not a valid JS module exporting vote")
	ErrConstitution     = errors.New("gov: the constitution failed")
	ErrMismatch         = errors.New("gov: the request does not match the URL")
)

// Ledger is what governance needs from the ledger.
type Ledger interface {
	State
	SubmitWrites(ctx context.Context, ws *log.WriteSet) (log.TxID, error)
	LatestCheckpoint() (*log.Checkpoint, error)
}

// Config configures governance.
type Config struct {
	// MaxRequestAge bounds how old (or how far in the future) a request's
	// created_at may be. Default 10 minutes.
	MaxRequestAge time.Duration
	// Limits bound each constitution and ballot call.
	Limits policy.Limits
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ValidateApp, if set, checks a JS app bundle (CCF's bundle.json,
	// {"metadata", "modules"}) beyond its JSON shape: every js_module
	// exists, every js_function is exported, the modules parse. The
	// constitution reaches it as charter.validateAppBundle, and the
	// default one calls it when validating set_js_app, so a bundle that
	// could never run is refused at proposal time (ProposalInvalid, with
	// the error's message) instead of failing on the first request. Nil:
	// only the constitution's JSON-shape checks apply. It must be safe for
	// concurrent use and must not call back into governance.
	ValidateApp func(bundleJSON []byte) error
	// RecoveredSecrets takes the ledger secrets (versions 0 to latest,
	// each checked against its record) that recovery members' shares
	// recovered, so the node reads the recovered private maps;
	// SubmitRecoveryShare opens the service only once it returned nil.
	// Nil: shares are refused at the threshold.
	RecoveredSecrets func(secrets [][]byte) error
	// ServiceCert, if set, is the service's certificate: the next service
	// identity a constitution passes to CCF's
	// ccf.node.transitionServiceToOpen must be it, as CCF requires. Nil:
	// the identity is checked to be a certificate only.
	ServiceCert *x509.Certificate
}

// Service executes governance requests on the leader. Operations are
// serialised: each reads the applied state, decides its writes with the
// constitution, and returns only once its transaction is applied, so the
// next operation reads it.
type Service struct {
	ledger Ledger
	cfg    Config
	log    *slog.Logger

	mu   sync.Mutex
	prog struct {
		source string
		p      *policy.Program
	}
	// held are the recovery shares submitted so far (recoveryshares.go).
	held heldShares
}

// NewService returns governance over l.
func NewService(l Ledger, cfg Config, logger *slog.Logger) *Service {
	if cfg.MaxRequestAge == 0 {
		cfg.MaxRequestAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{ledger: l, cfg: cfg, log: logger}
}

// Result is the outcome of an operation: its transaction and, for
// proposal operations, the proposal's record.
type Result struct {
	TxID       log.TxID
	ProposalID string
	Info       *govwire.ProposalInfo
	// StateDigest is set by UpdateStateDigest.
	StateDigest string
}

// run executes one governance operation for request r: under the lock,
// on an overlay of the applied state, it authenticates r as a request of
// type want (from an active member if needActive), lets fn decide the
// writes, and submits them with r as the claims. It returns res with the
// transaction id once applied.
func (s *Service) run(ctx context.Context, r *govwire.Request, want govwire.MsgType, needActive bool, res *Result, fn func(o *overlay, member *govwire.MemberInfo) error) (*Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := newOverlay(s.ledger)
	member, err := s.authenticate(o, r, want, needActive)
	if err != nil {
		return nil, err
	}
	if err := fn(o, member); err != nil {
		return nil, err
	}
	txid, err := s.ledger.SubmitWrites(ctx, o.writeSet(r.Raw))
	if err != nil {
		return nil, err
	}
	res.TxID = txid
	return res, nil
}

// authenticate checks a request's signer, signature, freshness and
// uniqueness, and records it (history and replay window) in o.
func (s *Service) authenticate(o *overlay, r *govwire.Request, want govwire.MsgType, needActive bool) (*govwire.MemberInfo, error) {
	if r.Type != want {
		return nil, fmt.Errorf("%w: a %s request was sent where a %s is expected", govwire.ErrWrongType, r.Type, want)
	}
	certPEM, ok, err := o.Get(govwire.MapMemberCerts, r.MemberID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", govwire.ErrUnknownMember, r.MemberID)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("gov: stored certificate of member %s: %w", r.MemberID, err)
	}
	if err := r.Verify(cert); err != nil {
		return nil, err
	}
	seenMap, seen := govwire.MapRecentRequests, ""
	if r.HTTPSigned() {
		// No time is signed: each signing string is accepted once, ever
		// (httpsig.go).
		seenMap, seen = govwire.MapHTTPSignedRequests, r.HTTPReplayKey()
	} else {
		if err := r.CheckFresh(s.cfg.Now(), s.cfg.MaxRequestAge); err != nil {
			return nil, err
		}
		// The replay window is keyed by what was signed, not by the request's
		// bytes: an ECDSA signature can be re-encoded ((r, n−s)) into other
		// bytes that still verify, and that must not make a replay new.
		d := signedContentDigest(r)
		// Zero-padded so that keys sort by time, for pruning.
		seen = fmt.Sprintf("%020d:%s", r.CreatedAt, hex.EncodeToString(d[:]))
	}
	if _, dup, err := o.Get(seenMap, seen); err != nil {
		return nil, err
	} else if dup {
		return nil, fmt.Errorf("%w: this exact request was already processed", govwire.ErrReplay)
	}
	info, err := memberInfo(o, r.MemberID)
	if err != nil {
		return nil, err
	}
	if needActive && info.Status != govwire.MemberActive {
		return nil, fmt.Errorf("%w: member %s is %s; it must acknowledge the state digest first", ErrNotActive, r.MemberID, info.Status)
	}
	if err := s.pruneRecent(o); err != nil {
		return nil, err
	}
	o.Set(seenMap, seen, string(r.Type))
	o.Set(govwire.MapHistory, r.MemberID, base64.StdEncoding.EncodeToString(r.Raw))
	return info, nil
}

// pruneRecent forgets requests older than the freshness window: CheckFresh
// refuses them anyway, so the replay window need not remember them.
func (s *Service) pruneRecent(o *overlay) error {
	keys, err := o.Keys(govwire.MapRecentRequests)
	if err != nil {
		return err
	}
	cutoff := fmt.Sprintf("%020d", s.cfg.Now().Add(-2*s.cfg.MaxRequestAge).Unix())
	for _, k := range keys {
		if k >= cutoff {
			break
		}
		o.Delete(govwire.MapRecentRequests, k)
	}
	return nil
}

// signedContentDigest is SHA-256 of the protected header and the payload:
// the content a member signed, whatever the signature's encoding.
func signedContentDigest(r *govwire.Request) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(r.RawProtected)))
	h.Write(n[:])
	h.Write(r.RawProtected)
	h.Write(r.Payload)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func memberInfo(o *overlay, id string) (*govwire.MemberInfo, error) {
	v, ok, err := o.Get(govwire.MapMemberInfo, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", govwire.ErrUnknownMember, id)
	}
	var info govwire.MemberInfo
	if err := json.Unmarshal([]byte(v), &info); err != nil {
		return nil, err
	}
	return &info, nil
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func setJSON(o *overlay, m, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.Set(m, key, string(b))
	return nil
}

// Propose creates a proposal from a signed "proposal" request.
func (s *Service) Propose(ctx context.Context, raw []byte) (*Result, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	return s.ProposeRequest(ctx, r)
}

// ProposeRequest is Propose of a parsed request (COSE or HTTP-signed).
func (s *Service) ProposeRequest(ctx context.Context, r *govwire.Request) (*Result, error) {
	prop, err := r.Proposal()
	if err != nil {
		return nil, err
	}
	if err := s.precheck(prop); err != nil {
		return nil, err
	}
	res := &Result{}
	return s.run(ctx, r, govwire.MsgProposal, true, res, func(o *overlay, _ *govwire.MemberInfo) error {
		c, err := s.constitution(o)
		if err != nil {
			return err
		}
		if err := c.validate(ctx, o, string(r.Payload)); err != nil {
			return err
		}
		// The id is derived from the request and the ledger position, so a
		// member cannot choose it.
		d := signedContentDigest(r)
		var size [8]byte
		if cp, err := s.ledger.LatestCheckpoint(); err == nil {
			binary.BigEndian.PutUint64(size[:], cp.TreeSize)
		}
		sum := sha256.Sum256(append(d[:], size[:]...))
		id := hex.EncodeToString(sum[:])
		if _, exists, err := o.Get(govwire.MapProposals, id); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("%w: proposal %s exists", govwire.ErrReplay, id)
		}
		o.Set(govwire.MapProposals, id, string(r.Payload))
		info := &govwire.ProposalInfo{ProposerID: r.MemberID, State: govwire.StateOpen, Ballots: map[string]string{}}
		if err := s.resolve(ctx, o, c, id, string(r.Payload), info); err != nil {
			return err
		}
		res.ProposalID, res.Info = id, info
		return setJSON(o, govwire.MapProposalsInfo, id, info)
	})
}

// precheck refuses, at proposal time, JS that could never run: a new
// constitution must compile and export validate, resolve and apply, or the
// network could not govern itself any more once it applied.
func (s *Service) precheck(p *govwire.Proposal) error {
	for i, a := range p.Actions {
		var args struct {
			Constitution string `json:"constitution"`
			Policy       string `json:"policy"`
		}
		switch a.Name {
		case "set_constitution", "set_registration_policy":
			if err := json.Unmarshal(a.Args, &args); err != nil {
				return fmt.Errorf("%w: action %d (%s): %v", ErrInvalidProposal, i, a.Name, err)
			}
		default:
			continue
		}
		var err error
		if a.Name == "set_constitution" {
			_, err = CompileConstitution(args.Constitution, s.cfg.Limits)
		} else if args.Policy != "" {
			// A registration policy must compile and export apply; what it
			// does at run time is reported per registration (PolicyError).
			_, err = policy.NewRegistrationPolicy(args.Policy, s.cfg.Limits)
		}
		if err != nil {
			return fmt.Errorf("%w: action %d (%s): %v", ErrInvalidProposal, i, a.Name, err)
		}
	}
	return nil
}

// Vote records a member's ballot on an open proposal and resolves it.
func (s *Service) Vote(ctx context.Context, proposalID, memberID string, raw []byte) (*Result, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	return s.VoteRequest(ctx, proposalID, memberID, r)
}

// VoteRequest is Vote of a parsed request (COSE or HTTP-signed).
func (s *Service) VoteRequest(ctx context.Context, proposalID, memberID string, r *govwire.Request) (*Result, error) {
	if r.ProposalID != proposalID || r.MemberID != memberID {
		return nil, fmt.Errorf("%w: the ballot is signed for proposal %s by member %s", ErrMismatch, r.ProposalID, r.MemberID)
	}
	b, err := r.Ballot()
	if err != nil {
		return nil, err
	}
	if _, err := policy.Compile("ballot", map[string]string{"ballot.js": b.Ballot}, "ballot.js", s.cfg.Limits); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBallot, err)
	}
	res := &Result{ProposalID: proposalID}
	return s.run(ctx, r, govwire.MsgBallot, true, res, func(o *overlay, _ *govwire.MemberInfo) error {
		proposal, info, err := openProposal(o, proposalID)
		if err != nil {
			return err
		}
		info.Ballots[memberID] = b.Ballot
		c, err := s.constitution(o)
		if err != nil {
			return err
		}
		if err := s.resolve(ctx, o, c, proposalID, proposal, info); err != nil {
			return err
		}
		res.Info = info
		return setJSON(o, govwire.MapProposalsInfo, proposalID, info)
	})
}

// Withdraw closes an open proposal at its proposer's request.
func (s *Service) Withdraw(ctx context.Context, proposalID string, raw []byte) (*Result, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	return s.WithdrawRequest(ctx, proposalID, r)
}

// WithdrawRequest is Withdraw of a parsed request (COSE or HTTP-signed).
func (s *Service) WithdrawRequest(ctx context.Context, proposalID string, r *govwire.Request) (*Result, error) {
	if r.ProposalID != proposalID {
		return nil, fmt.Errorf("%w: the withdrawal is signed for proposal %s", ErrMismatch, r.ProposalID)
	}
	res := &Result{ProposalID: proposalID}
	return s.run(ctx, r, govwire.MsgWithdrawal, true, res, func(o *overlay, _ *govwire.MemberInfo) error {
		_, info, err := openProposal(o, proposalID)
		if err != nil {
			return err
		}
		if info.ProposerID != r.MemberID {
			return fmt.Errorf("%w: %s proposed it", ErrNotProposer, info.ProposerID)
		}
		info.State = govwire.StateWithdrawn
		res.Info = info
		return setJSON(o, govwire.MapProposalsInfo, proposalID, info)
	})
}

// UpdateStateDigest issues a member the digest it must sign to become
// active: the root of the newest checkpoint, which commits to the whole
// ledger, governance included.
func (s *Service) UpdateStateDigest(ctx context.Context, memberID string, raw []byte) (*Result, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	return s.UpdateStateDigestRequest(ctx, memberID, r)
}

// UpdateStateDigestRequest is UpdateStateDigest of a parsed request (COSE
// or HTTP-signed).
func (s *Service) UpdateStateDigestRequest(ctx context.Context, memberID string, r *govwire.Request) (*Result, error) {
	if r.MemberID != memberID {
		return nil, fmt.Errorf("%w: the request is signed by member %s", ErrMismatch, r.MemberID)
	}
	res := &Result{}
	return s.run(ctx, r, govwire.MsgStateDigest, false, res, func(o *overlay, _ *govwire.MemberInfo) error {
		return s.issueStateDigest(o, memberID, res)
	})
}

// issueStateDigest records in o the digest memberID must acknowledge, and
// sets it in res.
func (s *Service) issueStateDigest(o *overlay, memberID string, res *Result) error {
	d, err := s.stateDigest()
	if err != nil {
		return err
	}
	res.StateDigest = d
	return setJSON(o, govwire.MapMemberAcks, memberID, govwire.AckRecord{StateDigest: res.StateDigest})
}

// stateDigest is the digest members acknowledge: the newest checkpoint's
// root, hex.
func (s *Service) stateDigest() (string, error) {
	cp, err := s.ledger.LatestCheckpoint()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(cp.Root[:]), nil
}

// Ack activates a member that signed the state digest it was issued.
func (s *Service) Ack(ctx context.Context, memberID string, raw []byte) (*Result, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	return s.AckRequest(ctx, memberID, r)
}

// AckRequest is Ack of a parsed request (COSE or HTTP-signed).
func (s *Service) AckRequest(ctx context.Context, memberID string, r *govwire.Request) (*Result, error) {
	if r.MemberID != memberID {
		return nil, fmt.Errorf("%w: the request is signed by member %s", ErrMismatch, r.MemberID)
	}
	a, err := r.Ack()
	if err != nil {
		return nil, err
	}
	return s.run(ctx, r, govwire.MsgAck, false, &Result{}, func(o *overlay, info *govwire.MemberInfo) error {
		v, ok, err := o.Get(govwire.MapMemberAcks, memberID)
		if err != nil {
			return err
		}
		var issued govwire.AckRecord
		if ok {
			if err := json.Unmarshal([]byte(v), &issued); err != nil {
				return err
			}
		}
		if !ok || issued.StateDigest != a.StateDigest {
			return fmt.Errorf("%w: ask for a state digest (update) and sign that one", ErrWrongDigest)
		}
		info.Status = govwire.MemberActive
		return setJSON(o, govwire.MapMemberInfo, memberID, info)
	})
}

func openProposal(o *overlay, id string) (proposal string, info *govwire.ProposalInfo, err error) {
	proposal, ok, err := o.Get(govwire.MapProposals, id)
	if err != nil {
		return "", nil, err
	}
	raw, ok2, err := o.Get(govwire.MapProposalsInfo, id)
	if err != nil {
		return "", nil, err
	}
	if !ok || !ok2 {
		return "", nil, fmt.Errorf("%w: %s", ErrProposalNotFound, id)
	}
	info = &govwire.ProposalInfo{}
	if err := json.Unmarshal([]byte(raw), info); err != nil {
		return "", nil, err
	}
	if info.Ballots == nil {
		info.Ballots = map[string]string{}
	}
	if info.State != govwire.StateOpen {
		return "", nil, fmt.Errorf("%w: proposal %s is %s", ErrProposalClosed, id, info.State)
	}
	return proposal, info, nil
}
