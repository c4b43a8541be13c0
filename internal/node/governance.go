package node

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"github.com/charterlog/charter/internal/pause"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
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
	self, err := n.genesisNodeWrites(g.Development)
	if err != nil {
		return err
	}
	// A development network (its own generated member) opens at once,
	// unless it was created to open by vote; a consortium's network opens
	// when its members vote transition_service_to_open, and nodes that join
	// before then are trusted on their attestation alone (CCF's rule).
	spec := gov.Genesis{Constitution: g.Constitution, SCITTConfiguration: reg, Open: g.MembersActive && !g.OpenByVote, Also: self,
		ServiceCertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.ServiceCert}))}
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
		if _, err := n.ledger.GetKV(govwire.MapConstitution, []byte(govwire.KeyConstitution)); err == nil {
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
		if err := pause.For(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// validateAppBundle is what governance runs on a proposed app bundle
// (gov.Config.ValidateApp): the app runtime's own check, so that a bundle
// governance accepts is one every node can load.
var validateAppBundle = app.CheckBundle
