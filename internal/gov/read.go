package gov

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/ledger"
)

// What governance's read endpoints serve, from the committed state.

// ProposalInfo is proposal id's record; ErrProposalNotFound (wrapping the
// ledger's error) if it has none.
func (s *Service) ProposalInfo(id string) (*govwire.ProposalInfo, error) {
	raw, err := s.ledger.GetKV(govwire.MapProposalsInfo, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProposalNotFound, err)
	}
	var info govwire.ProposalInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// ProposalActions is proposal id's proposal as it was submitted (JSON);
// ErrProposalNotFound (wrapping the ledger's error) if there is none.
func (s *Service) ProposalActions(id string) ([]byte, error) {
	raw, err := s.ledger.GetKV(govwire.MapProposals, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProposalNotFound, err)
	}
	return raw, nil
}

// ServiceStatus is the governed service state: govwire.ServiceOpening until
// governance records another.
func (s *Service) ServiceStatus() string {
	info := govwire.ServiceInfo{Status: govwire.ServiceOpening}
	if raw, err := s.ledger.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService)); err == nil {
		_ = json.Unmarshal(raw, &info)
	}
	return info.Status
}

// Constitution is the constitution in force (JavaScript), or the
// ledger's error (ledger.ErrNotFound before genesis).
func (s *Service) Constitution() ([]byte, error) {
	return s.ledger.GetKV(govwire.MapConstitution, []byte(govwire.KeyConstitution))
}

// EachMember calls fn for every member with its certificate and
// encryption key ("" if none), in member id order.
func (s *Service) EachMember(fn func(id string, info govwire.MemberInfo, cert, encKey string)) error {
	return s.ledger.ScanKV(govwire.MapMemberInfo, func(k, v []byte) error {
		var info govwire.MemberInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return err
		}
		var cert, enc string
		if c, err := s.ledger.GetKV(govwire.MapMemberCerts, k); err == nil {
			cert = string(c)
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		if e, err := s.ledger.GetKV(govwire.MapMemberEncKeys, k); err == nil {
			enc = string(e)
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		fn(string(k), info, cert, enc)
		return nil
	})
}
