package gov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// MemberSpec is an initial member of a new network.
type MemberSpec struct {
	CertPEM string
	// EncryptionKeyPEM is the member's public encryption key for recovery
	// shares; optional.
	EncryptionKeyPEM string
	Data             json.RawMessage
	// Active skips the acknowledgement (the dev network's own member).
	Active bool
}

// Genesis is the governance state of a new network.
type Genesis struct {
	Members      []MemberSpec
	Constitution string // empty: DefaultConstitution
	// SCITTConfiguration is the initial registration configuration, JSON.
	SCITTConfiguration json.RawMessage
	// Open opens the service at once (dev); otherwise members open it with
	// transition_service_to_open.
	Open bool
	// ServiceCertPEM is the service certificate, recorded in the service
	// info for transition_service_to_open's next_service_identity.
	ServiceCertPEM string
	// Also are further writes of the genesis transaction: the node that
	// creates the network approves its own measurement there.
	Also []log.Write
}

// Bootstrap writes the governance state of a new network, once: it does
// nothing when a constitution is already in the ledger. The constitution
// must compile.
func Bootstrap(ctx context.Context, l Ledger, g Genesis, limits Config) (bool, error) {
	if _, err := l.GetKV(govwire.MapConstitution, []byte(govwire.KeyConstitution)); err == nil {
		return false, nil
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return false, err
	}
	if len(g.Members) == 0 {
		return false, errors.New("gov: a network needs at least one member")
	}
	src := g.Constitution
	if src == "" {
		src = DefaultConstitution
	}
	if _, err := CompileConstitution(src, limits.Limits); err != nil {
		return false, err
	}
	o := newOverlay(l)
	for i, m := range g.Members {
		cert, err := parseCertPEM(m.CertPEM)
		if err != nil {
			return false, fmt.Errorf("gov: member %d: %w", i, err)
		}
		id := govwire.MemberIDOf(cert)
		status := govwire.MemberAccepted
		if m.Active {
			status = govwire.MemberActive
		}
		o.Set(govwire.MapMemberCerts, id, m.CertPEM)
		if err := setJSON(o, govwire.MapMemberInfo, id, govwire.MemberInfo{Status: status, MemberData: m.Data}); err != nil {
			return false, err
		}
		if m.EncryptionKeyPEM != "" {
			o.Set(govwire.MapMemberEncKeys, id, m.EncryptionKeyPEM)
		}
	}
	o.Set(govwire.MapConstitution, govwire.KeyConstitution, src)
	status := govwire.ServiceOpening
	if g.Open {
		status = govwire.ServiceOpen
	}
	if err := setJSON(o, govwire.MapServiceInfo, govwire.KeyService, govwire.ServiceInfo{Status: status, Cert: g.ServiceCertPEM}); err != nil {
		return false, err
	}
	if len(g.SCITTConfiguration) > 0 {
		o.Set(govwire.MapSCITTConfig, "configuration", string(g.SCITTConfiguration))
	}
	for _, w := range g.Also {
		o.Set(w.Map, string(w.Key), string(w.Value))
	}
	_, err := l.SubmitWrites(ctx, o.writeSet([]byte("genesis")))
	return err == nil, err
}
