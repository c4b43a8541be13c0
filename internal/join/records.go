package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

// State is the committed key-value state the records live in, and the
// way to change it (the leader's ledger).
type State interface {
	GetKV(m string, key []byte) ([]byte, error)
	ScanKV(m string, fn func(key, value []byte) error) error
	SubmitWrites(ctx context.Context, ws *log.WriteSet) (log.TxID, error)
}

// Node states in public:ccf.gov.nodes.info (CCF's).
const (
	NodePending = "Pending"
	NodeTrusted = "Trusted"
	NodeRetired = "Retired"
)

// NodeRecord is a node's entry in public:ccf.gov.nodes.info. Governance
// writes Status (transition_node_to_trusted, remove_node) and keeps the
// other fields; the leader writes the rest when the node joins.
type NodeRecord struct {
	Status          string     `json:"status"`
	URL             string     `json:"url,omitempty"`
	PublicKey       string     `json:"public_key,omitempty"` // PEM
	QuoteInfo       *QuoteInfo `json:"quote_info,omitempty"`
	Measurement     string     `json:"measurement,omitempty"` // hex
	HostData        string     `json:"host_data,omitempty"`   // hex
	Joined          bool       `json:"joined,omitempty"`
	SecretsReleased bool       `json:"secrets_released,omitempty"`
}

// QuoteInfo is a node's evidence as recorded (CCF's field name).
type QuoteInfo struct {
	Format   string `json:"format"`   // attest.Platform
	Evidence []byte `json:"evidence"` // attest.MarshalEvidence, base64 in JSON
}

// Records reads public:ccf.gov.nodes.info; entries that do not parse are
// left out.
func Records(st State) (map[uint64]NodeRecord, error) {
	out := map[uint64]NodeRecord{}
	err := st.ScanKV(govwire.MapNodesInfo, func(k, v []byte) error {
		id, err := strconv.ParseUint(string(k), 10, 64)
		if err != nil {
			return nil
		}
		var r NodeRecord
		if json.Unmarshal(v, &r) == nil {
			out[id] = r
		}
		return nil
	})
	return out, err
}

// RecordOf is node id's record, if it has one that parses.
func RecordOf(st State, id uint64) (NodeRecord, bool) {
	raw, err := st.GetKV(govwire.MapNodesInfo, []byte(strconv.FormatUint(id, 10)))
	var r NodeRecord
	if err != nil || json.Unmarshal(raw, &r) != nil {
		return r, false
	}
	return r, true
}

// writeRecord commits node id's record in a transaction of its own, with
// claims (the join request, for a first join).
func writeRecord(ctx context.Context, st State, id uint64, r NodeRecord, claims []byte) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = st.SubmitWrites(ctx, &log.WriteSet{
		Writes: []log.Write{{Map: govwire.MapNodesInfo, Key: []byte(strconv.FormatUint(id, 10)), Value: v}},
		Claims: claims,
	})
	return err
}

// ServiceOpen reports whether governance has opened the service: until
// then joining nodes are trusted at once.
func ServiceOpen(st State) bool {
	var svc govwire.ServiceInfo
	raw, err := st.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService))
	return err == nil && json.Unmarshal(raw, &svc) == nil && svc.Status == govwire.ServiceOpen
}

// serviceRecovering reports whether the service is a recovered one whose
// ledger secrets are not recovered yet (Recovering,
// WaitingForRecoveryShares).
func serviceRecovering(st State) bool {
	var svc govwire.ServiceInfo
	raw, err := st.GetKV(govwire.MapServiceInfo, []byte(govwire.KeyService))
	return err == nil && json.Unmarshal(raw, &svc) == nil && govwire.Recovering(svc.Status)
}

// PublicKeyPEM is how a record names a node's key.
func PublicKeyPEM(k *ecdsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// NewRecord is the record of a node whose evidence (ev, and raw, its
// attest.MarshalEvidence) verified as v.
func NewRecord(status, u string, key *ecdsa.PublicKey, ev *attest.Evidence, raw []byte, v *attest.Verified) NodeRecord {
	return NodeRecord{
		Status: status, URL: u, PublicKey: PublicKeyPEM(key),
		QuoteInfo:   &QuoteInfo{Format: string(ev.Platform), Evidence: raw},
		Measurement: hex.EncodeToString(v.Measurement), HostData: hex.EncodeToString(v.HostData),
	}
}

// ApprovedPolicy is what the network accepts for evidence of platform:
// base (the verifier's own settings) with the approvals governance keeps
// for that platform — virtual measurements for the virtual platform (which
// is accepted only while there is one), SNP measurements and host data
// otherwise. scan calls keep with every key (hex) of a governed map; keys
// of the wrong size are ignored. The node uses it on its state, and
// `charter node verify-quotes` on the state an audited ledger replays to.
func ApprovedPolicy(base attest.Policy, platform attest.Platform, scan func(m string, keep func(hexKey string)) error) (attest.Policy, error) {
	approved := func(m string, size int) ([][]byte, error) {
		var out [][]byte
		err := scan(m, func(k string) {
			if b, err := hex.DecodeString(k); err == nil && len(b) == size {
				out = append(out, b)
			}
		})
		return out, err
	}
	p := base
	var err error
	switch platform {
	case attest.PlatformVirtual:
		p.Measurements, err = approved(govwire.MapVirtualMeasurements, attest.MeasurementSize)
		p.AllowVirtual = len(p.Measurements) > 0
	default:
		p.Measurements, err = approved(govwire.MapSNPMeasurements, attest.MeasurementSize)
		if err == nil {
			p.HostData, err = approved(govwire.MapSNPHostData, attest.HostDataSize)
		}
	}
	return p, err
}
