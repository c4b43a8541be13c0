package join

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

// GenesisWrites are the first node's part of a new network's governance
// state: its own record (Trusted, with its key and evidence, so peers know
// it by its key from the start and auditors can re-verify it), and, as CCF
// does for the node that starts a network, the approval of its own
// measurement so that nodes running the same code can join. A virtual
// measurement is approved only on a development network: elsewhere virtual
// evidence, which anyone can make, admits a node only by an explicit vote
// (add_virtual_measurement). The evidence is verified first against base
// (its roots and certificate cache), accepting its own measurement.
func GenesisWrites(ctx context.Context, id uint64, url string, key *ecdsa.PublicKey, ev *attest.Evidence, base attest.Policy, development bool) ([]log.Write, error) {
	m, err := ev.Measurement()
	if err != nil {
		return nil, err
	}
	base.AllowVirtual, base.Measurements = true, [][]byte{m}
	v, err := attest.Verify(ctx, ev, key, base)
	if err != nil {
		return nil, fmt.Errorf("this node's own evidence does not verify: %w", err)
	}
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	rec, err := json.Marshal(NewRecord(NodeTrusted, url, key, ev, raw, v))
	if err != nil {
		return nil, err
	}
	writes := []log.Write{{Map: govwire.MapNodesInfo, Key: []byte(strconv.FormatUint(id, 10)), Value: rec}}
	switch {
	case v.Platform != attest.PlatformVirtual:
		writes = append(writes, log.Write{Map: govwire.MapSNPMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	case development:
		writes = append(writes, log.Write{Map: govwire.MapVirtualMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	}
	return writes, nil
}
