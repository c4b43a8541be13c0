package gov

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/govwire"

	"github.com/charterlog/charter/internal/ledger"
)

// The reads CCF 7's governance API serves (2024-07-01: proposals, state
// digests, members, the JavaScript app, the join policy), from the
// committed state. Each names govwire.ErrNotFound (wrapping the ledger's error)
// for what is not there.

// EachProposal calls fn for every proposal's record, in proposal id order.
func (s *Service) EachProposal(fn func(id string, info govwire.ProposalInfo)) error {
	return s.ledger.ScanKV(govwire.MapProposalsInfo, func(k, v []byte) error {
		var info govwire.ProposalInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("gov: proposal %s's record: %w", k, err)
		}
		fn(string(k), info)
		return nil
	})
}

// StateDigest is the state digest last issued to member (by
// UpdateStateDigest).
func (s *Service) StateDigest(member string) (string, error) {
	raw, err := s.ledger.GetKV(govwire.MapMemberAcks, []byte(member))
	if err != nil {
		return "", notFound(err, "no state digest was issued to member "+member)
	}
	var ack govwire.AckRecord
	if err := json.Unmarshal(raw, &ack); err != nil {
		return "", err
	}
	return ack.StateDigest, nil
}

// Member is member id's record, certificate and encryption key ("" if
// none).
func (s *Service) Member(id string) (info govwire.MemberInfo, cert, encKey string, err error) {
	raw, err := s.ledger.GetKV(govwire.MapMemberInfo, []byte(id))
	if err != nil {
		return info, "", "", notFound(err, "no member "+id)
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return info, "", "", err
	}
	if c, err := s.ledger.GetKV(govwire.MapMemberCerts, []byte(id)); err == nil {
		cert = string(c)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return info, "", "", err
	}
	if e, err := s.ledger.GetKV(govwire.MapMemberEncKeys, []byte(id)); err == nil {
		encKey = string(e)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return info, "", "", err
	}
	return info, cert, encKey, nil
}

// AppBundle is the deployed JavaScript app's bundle as governance stored
// it (set_js_app).
func (s *Service) AppBundle() ([]byte, error) {
	raw, err := s.ledger.GetKV(govwire.MapAppBundle, []byte(govwire.KeyAppBundle))
	if err != nil {
		return nil, notFound(err, "no app is deployed")
	}
	return raw, nil
}

// JoinPolicy is what governance approved for joining nodes: the keys
// (hex) of the SNP measurement, SNP host data and virtual measurement
// maps.
type JoinPolicy struct {
	SNPMeasurements     []string
	SNPHostData         []string
	VirtualMeasurements []string
}

// JoinPolicy reads the join policy's maps.
func (s *Service) JoinPolicy() (JoinPolicy, error) {
	var p JoinPolicy
	for _, m := range []struct {
		name string
		out  *[]string
	}{{govwire.MapSNPMeasurements, &p.SNPMeasurements}, {govwire.MapSNPHostData, &p.SNPHostData}, {govwire.MapVirtualMeasurements, &p.VirtualMeasurements}} {
		*m.out = []string{}
		err := s.ledger.ScanKV(m.name, func(k, _ []byte) error {
			*m.out = append(*m.out, string(k))
			return nil
		})
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// notFound is govwire.ErrNotFound for what, if err is the ledger's absent key;
// err otherwise.
func notFound(err error, what string) error {
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w: %s", govwire.ErrNotFound, what)
	}
	return err
}
