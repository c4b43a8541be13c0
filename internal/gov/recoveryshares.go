package gov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/govwire"
	"slices"
	"strconv"
	"sync"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/recovery"
	"github.com/charterlog/charter/log"
)

// Errors of a recovery share submission, each with its own answer; none
// changes anything.
var (
	// ErrSharesNotExpected: the service is not WaitingForRecoveryShares
	// (not recovered, not yet opened by transition_service_to_open, or
	// open already).
	ErrSharesNotExpected = errors.New("gov: the service is not waiting for recovery shares")
	// ErrNotRecoveryMember: the member holds no share of the current
	// sharing.
	ErrNotRecoveryMember = errors.New("gov: not a recovery member")
	// ErrWrongShare: not a share of the recovery key the ledger commits to.
	ErrWrongShare = errors.New("gov: not a share of the current recovery key")
	// ErrShareReplayed: this member's share, or this share, was submitted
	// already.
	ErrShareReplayed = errors.New("gov: this recovery share was already submitted")
	// ErrNoSharing: the recovered ledger records no sharing, so its private
	// maps cannot be recovered.
	ErrNoSharing = errors.New("gov: the ledger records no recovery sharing")
)

// ShareResult is the answer to a submitted share.
type ShareResult struct {
	Submitted, Threshold int
	// Opened: this share reached the threshold, the ledger secrets were
	// recovered and handed to the node, and the service is Open (TxID).
	Opened bool
	TxID   log.TxID
}

// heldShares are the shares submitted since the service began waiting
// for them: in memory only, on the node that took them (the leader), and
// forgotten when the node stops or the service opens. Never written: a
// share in clear in the ledger would let anyone who reads it recover the
// key.
type heldShares struct {
	mu     sync.Mutex
	basis  string            // the sharing the shares are of
	byID   map[string][]byte // member id → share
	shares map[string]string // share id → member id
}

func (h *heldShares) reset(basis string) {
	for _, s := range h.byID {
		clear(s)
	}
	h.basis, h.byID, h.shares = basis, map[string][]byte{}, map[string]string{}
}

// SubmitRecoveryShare takes a recovery member's decrypted share, in a
// recovery_share request (CCF's: payload {"share": base64}) signed by
// memberID, who must be Active. It is refused, changing nothing, unless the
// service is WaitingForRecoveryShares, the member is a recovery member of
// the ledger's sharing, the share is one of the key the ledger commits to
// (recovery.Sharing.Verify), and neither the member nor the share has
// submitted already. The share is held in memory. At the threshold the
// shares are combined, the ledger secrets (every version) unwrapped and
// checked, and handed to Config.RecoveredSecrets; then the service is
// recorded Open, in a transaction that names the members who submitted
// (never the shares).
func (s *Service) SubmitRecoveryShare(ctx context.Context, memberID string, raw []byte) (*ShareResult, error) {
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		return nil, err
	}
	if r.MemberID != memberID {
		return nil, fmt.Errorf("%w: the request is signed by member %s", ErrMismatch, r.MemberID)
	}
	share, err := r.RecoveryShare(recovery.ShareSize)
	if err != nil {
		return nil, err
	}
	defer clear(share)

	s.mu.Lock()
	defer s.mu.Unlock()
	// Authenticated (signature, freshness, an Active member) but not
	// recorded: the request holds the share in clear.
	if _, err := s.authenticate(newOverlay(s.ledger), r, govwire.MsgRecoveryShare, true); err != nil {
		return nil, err
	}
	info := govwire.ServiceInfo{Status: govwire.ServiceOpening}
	if v, err := s.ledger.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService)); err == nil {
		if err := json.Unmarshal(v, &info); err != nil {
			return nil, fmt.Errorf("gov: service info: %w", err)
		}
	}
	if info.Status != govwire.ServiceWaitingForShares {
		return nil, fmt.Errorf("%w: it is %s; recovery shares are taken once transition_service_to_open moved a recovered service to %s", ErrSharesNotExpected, info.Status, govwire.ServiceWaitingForShares)
	}
	var rec recovery.SharingRecord
	v, err := s.ledger.GetKV(recovery.MapSharing, []byte(recovery.KeySharing))
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("%w: the lost service had no recovery threshold and members, so its private maps cannot be recovered", ErrNoSharing)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("gov: %s: %w", recovery.MapSharing, err)
	}
	if !slices.Contains(rec.Members, memberID) {
		return nil, fmt.Errorf("%w: member %s holds no share of the current recovery key", ErrNotRecoveryMember, memberID)
	}
	sharing := rec.Sharing()
	if err := sharing.Verify(share); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongShare, err)
	}
	id, err := recovery.ShareID(share)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongShare, err)
	}
	h := &s.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID == nil || h.basis != rec.Basis {
		h.reset(rec.Basis)
	}
	if _, ok := h.byID[memberID]; ok {
		return nil, fmt.Errorf("%w: member %s submitted its share already", ErrShareReplayed, memberID)
	}
	if other, ok := h.shares[string(id)]; ok {
		return nil, fmt.Errorf("%w: this share was submitted by member %s", ErrShareReplayed, other)
	}
	h.byID[memberID] = slices.Clone(share)
	h.shares[string(id)] = memberID
	res := &ShareResult{Submitted: len(h.byID), Threshold: rec.Threshold}
	if len(h.byID) < rec.Threshold {
		s.log.Info("recovery share submitted", "member", memberID, "submitted", res.Submitted, "threshold", rec.Threshold)
		return res, nil
	}
	secrets, err := s.recoverSecrets(&rec, h)
	if err != nil {
		// The shares each verified, so the ledger's records disagree
		// with each other; holding these shares would not help.
		h.reset(rec.Basis)
		return nil, err
	}
	if s.cfg.RecoveredSecrets == nil {
		return nil, errors.New("gov: this node takes no recovered ledger secrets")
	}
	if err := s.cfg.RecoveredSecrets(secrets); err != nil {
		return nil, fmt.Errorf("gov: handing the recovered ledger secrets to the node: %w", err)
	}
	members := slices.Sorted(func(yield func(string) bool) {
		for m := range h.byID {
			if !yield(m) {
				return
			}
		}
	})
	o := newOverlay(s.ledger)
	info.Status, info.PrivateStatePending = govwire.ServiceOpen, false
	if err := setJSON(o, govwire.MapServiceInfo, govwire.KeyService, info); err != nil {
		return nil, err
	}
	claims, err := json.Marshal(map[string]any{"recovery_shares_submitted_by": members})
	if err != nil {
		return nil, err
	}
	txid, err := s.ledger.SubmitWrites(ctx, o.writeSet(claims))
	if err != nil {
		// The node holds the secrets; members submit again to record
		// the service Open.
		h.reset(rec.Basis)
		return nil, err
	}
	h.reset("")
	s.log.Info("recovered the ledger secrets from the members' shares; the service is open", "members", members, "versions", len(secrets))
	res.Opened, res.TxID = true, txid
	return res, nil
}

// recoverSecrets combines the held shares and unwraps every ledger secret
// version, checking each against its record (spec/recovery.md, "From t
// decrypted shares to every ledger secret").
func (s *Service) recoverSecrets(rec *recovery.SharingRecord, h *heldShares) ([][]byte, error) {
	var shares [][]byte
	for _, sh := range h.byID {
		shares = append(shares, sh)
	}
	key, err := rec.Sharing().Combine(shares)
	if err != nil {
		return nil, fmt.Errorf("gov: combining the recovery shares: %w", err)
	}
	latest, err := key.Unwrap(rec.WrappedLedgerSecret, recovery.Label(rec.LedgerSecretVersion))
	if err != nil {
		return nil, fmt.Errorf("gov: the recovered key does not open the wrapped ledger secret: %w", err)
	}
	records := make([]recovery.SecretRecord, rec.LedgerSecretVersion)
	for v := uint64(1); v <= rec.LedgerSecretVersion; v++ {
		raw, err := s.ledger.GetKV(recovery.MapLedgerSecrets, []byte(strconv.FormatUint(v, 10)))
		if err != nil {
			return nil, fmt.Errorf("gov: ledger secret version %d's record: %w", v, err)
		}
		if err := json.Unmarshal(raw, &records[v-1]); err != nil {
			return nil, fmt.Errorf("gov: ledger secret version %d's record: %w", v, err)
		}
	}
	return recovery.Unchain(latest, records)
}
