package node

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/registry"
)

// bootstrapGovernance writes the governance state of a new network from its
// genesis (members, constitution, registration configuration). Only the
// leader does it, once; other nodes receive it through the ledger.
func (n *Node) bootstrapGovernance(ctx context.Context) error {
	g := n.genesis
	reg, err := json.Marshal(g.Registration)
	if err != nil {
		return err
	}
	spec := gov.Genesis{Constitution: g.Constitution, SCITTConfiguration: reg, Open: true}
	for _, der := range g.Members {
		spec.Members = append(spec.Members, gov.MemberSpec{
			CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			Active:  g.MembersActive,
		})
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := n.ledger.GetKV(gov.MapConstitution, []byte(gov.KeyConstitution)); err == nil {
			return nil
		}
		if leader, _ := n.raft.Leader(); leader {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			created, err := gov.Bootstrap(wctx, replicatedLedger{n.ledger, n.raft}, spec, gov.Config{})
			cancel()
			if err != nil {
				n.log.Warn("writing the governance state failed; retrying", "err", err)
			} else if created {
				n.log.Info("created governance", "members", len(spec.Members))
				return nil
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// policyCache turns the governed registration configuration into the
// registry's policy, re-parsing only when the stored value changes.
type policyCache struct {
	l   *ledger.Ledger
	mu  sync.Mutex
	raw string
	pol registry.Policy
}

func (c *policyCache) current() (registry.Policy, error) {
	raw, err := c.l.GetKV(gov.MapSCITTConfig, []byte("configuration"))
	if errors.Is(err, ledger.ErrNotFound) {
		raw = []byte("{}")
	} else if err != nil {
		return registry.Policy{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(raw) == c.raw && c.raw != "" {
		return c.pol, nil
	}
	var reg config.Registration
	if err := json.Unmarshal(raw, &reg); err != nil {
		return registry.Policy{}, fmt.Errorf("the governed registration configuration: %w", err)
	}
	if err := reg.Validate(); err != nil {
		return registry.Policy{}, err
	}
	c.raw = string(raw)
	c.pol = registry.Policy{AllowedAlgs: reg.Algorithms(), MaxStatementBytes: reg.MaxStatementBytes, TrustedCAs: reg.CAFingerprints()}
	return c.pol, nil
}
