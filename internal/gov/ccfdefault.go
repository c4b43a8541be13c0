package gov

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/grafana/sobek"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/recovery"
)

// This file serves the parts of CCF's `ccf` global that CCF's default
// constitution (samples/constitutions/default) calls beyond the KV and
// encoding helpers of ccfhost.go: the node's triggers, ccf.network, the
// JWT key functions, CCF's service configuration map over Charter's
// recovery threshold, and CCF's hex node ids over Charter's raft ids.
// spec/governance.md ("CCF's constitution API") lists each mapping.

// ccfMapServiceConfig is CCF's service configuration. Charter keeps one
// field of it, the recovery threshold, in public:ccf.gov.recovery (the map
// the primary's re-sharing reads); ccf.kv serves this map as a view of
// that one source of truth rather than storing a second copy.
const ccfMapServiceConfig = "public:ccf.gov.service.config"

// ccfServiceConfigField is the one field of CCF's service configuration
// Charter keeps.
const ccfServiceConfigField = "recovery_threshold"

// maxRecoveryThreshold is the bound constitution.js's
// set_recovery_threshold enforces.
const maxRecoveryThreshold = 255

// ccfUnservedMaps are CCF's governed maps whose settings Charter has no
// use for: a write to one through ccf.kv is refused rather than stored
// and ignored, so CCF's add_node_code, add_snp_uvm_endorsement and
// add_snp_tcb_version fail instead of seeming to gate joins.
var ccfUnservedMaps = map[string]string{
	"public:ccf.gov.nodes.code_ids":              "Charter's join gate is the attested measurement (public:ccf.gov.nodes.snp.measurements, …virtual.measurements), not a code id",
	"public:ccf.gov.nodes.snp.uvm_endorsements":  "Charter does not check UVM endorsements",
	"public:ccf.gov.nodes.snp.tcb_versions":      "the minimum TCB is the operator's configuration, not governed",
	"public:ccf.gov.nodes.endorsed_certificates": "Charter issues no service-endorsed node certificates",
}

// errNotServed marks CCF functions whose effect Charter does not have.
var errNotServed = errors.New("not served by Charter")

// buildCCFDefault adds the node triggers, ccf.network and the JWT key
// functions to the ccf global being built.
func (h *ccfHost) buildCCFDefault(ccf, node *sobek.Object) error {
	// A rekey request: the counter the primary answers with a new ledger
	// secret version and new shares (spec/recovery.md), as
	// constitution.js's trigger_ledger_rekey.
	h.fn(node, "triggerLedgerRekey", func(sobek.FunctionCall) sobek.Value {
		h.mustWrite("ccf.node.triggerLedgerRekey")
		h.requestRekey()
		return sobek.Undefined()
	})
	// CCF re-splits the recovery key among the same members. Charter's
	// primary makes a new sharing whenever the members or the threshold
	// change, and for a rekey request; a refresh is served as a rekey
	// request, which issues every active recovery member a new share (of
	// a new ledger secret version), so that shares issued before recover
	// nothing written after it. It is stronger than CCF's refresh, never
	// weaker.
	h.fn(node, "triggerRecoverySharesRefresh", func(sobek.FunctionCall) sobek.Value {
		h.mustWrite("ccf.node.triggerRecoverySharesRefresh")
		h.requestRekey()
		return sobek.Undefined()
	})
	notServed := func(obj *sobek.Object, name, why string) {
		h.fn(obj, name, func(sobek.FunctionCall) sobek.Value {
			h.throw("Error", "%s is %v: %s", name, errNotServed, why)
			return nil
		})
	}
	// Charter's ledger files are cut by size by each node (ledgerfiles),
	// and a node restores from its ledger, not from snapshots: there is no
	// chunk or snapshot for governance to ask for.
	notServed(node, "triggerLedgerChunk", "each node cuts its ledger files by size; governance cannot ask for a chunk")
	notServed(node, "triggerSnapshot", "Charter's nodes keep no snapshots")
	notServed(node, "triggerACMERefresh", "Charter has no ACME client")

	network := h.rt.NewObject()
	// Charter numbers ledger secrets by version and does not record the
	// seqno that made each; CCF's default writes this value into the
	// node's record, which Charter's nodes do not read (a trusted node is
	// sent every version up to the latest).
	h.fn(network, "getLatestLedgerSecretSeqno", func(sobek.FunctionCall) sobek.Value {
		v, err := latestSecretVersion(h.o)
		if err != nil {
			h.goErr(err)
		}
		return h.rt.ToValue(v)
	})
	notServed(network, "generateEndorsedCertificate", "a node's identity is its key in its record; Charter issues no service-endorsed node certificates")
	notServed(network, "generateNetworkCertificate", "the service certificate is made at genesis and not renewed by governance")
	if err := ccf.Set("network", network); err != nil {
		return err
	}

	h.fn(ccf, "setJwtPublicSigningKeys", func(fc sobek.FunctionCall) sobek.Value {
		h.mustWrite("ccf.setJwtPublicSigningKeys")
		issuer := h.strArg(fc, 0, "issuer")
		meta, err := jsonOf(fc.Argument(1))
		if err != nil {
			h.throw("TypeError", "metadata: %v", err)
		}
		jwks, err := jsonOf(fc.Argument(2))
		if err != nil {
			h.throw("TypeError", "jwks: %v", err)
		}
		if err := setJWTKeys(h.o, issuer, meta, jwks); err != nil {
			h.throw("Error", "setJwtPublicSigningKeys: %v", err)
		}
		return sobek.Undefined()
	})
	h.fn(ccf, "removeJwtPublicSigningKeys", func(fc sobek.FunctionCall) sobek.Value {
		h.mustWrite("ccf.removeJwtPublicSigningKeys")
		if err := replaceJWTKeys(h.o, h.strArg(fc, 0, "issuer"), nil); err != nil {
			h.goErr(err)
		}
		return sobek.Undefined()
	})
	return nil
}

// jsonOf is a JS value as decoded JSON (maps, slices, float64, …).
func jsonOf(v sobek.Value) (any, error) {
	if v == nil || sobek.IsUndefined(v) {
		return nil, errors.New("missing")
	}
	b, err := json.Marshal(v.Export())
	if err != nil {
		return nil, fmt.Errorf("not JSON-compatible: %v", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// requestRekey increments the rekey requests' counter.
func (h *ccfHost) requestRekey() {
	var n uint64
	if raw, ok, err := h.o.Get(recovery.MapRekey, recovery.KeyRekeyRequested); err != nil {
		h.goErr(err)
	} else if ok {
		if err := json.Unmarshal([]byte(raw), &n); err != nil {
			h.throw("Error", "%s[%s] is not a count: %v", recovery.MapRekey, recovery.KeyRekeyRequested, err)
		}
	}
	h.o.Set(recovery.MapRekey, recovery.KeyRekeyRequested, strconv.FormatUint(n+1, 10))
}

// latestSecretVersion is the newest ledger secret version recorded (0:
// none yet).
func latestSecretVersion(o *overlay) (uint64, error) {
	var latest uint64
	for v := uint64(1); ; v++ {
		_, ok, err := o.Get(recovery.MapLedgerSecrets, strconv.FormatUint(v, 10))
		if err != nil {
			return 0, err
		}
		if !ok {
			return latest, nil
		}
		latest = v
	}
}

// serviceConfig is CCF's service configuration as Charter serves it: the
// recovery threshold when one is set.
func serviceConfig(o *overlay) ([]byte, error) {
	cfg := map[string]any{}
	raw, ok, err := o.Get(govwire.MapRecovery, "threshold")
	if err != nil {
		return nil, err
	}
	if ok {
		cfg[ccfServiceConfigField] = json.RawMessage(raw)
	}
	return json.Marshal(cfg)
}

// setServiceConfig writes CCF's service configuration: its recovery
// threshold becomes Charter's. A field Charter does not keep is refused
// (not dropped) unless it is absent or null, so no setting is accepted
// and ignored.
func setServiceConfig(o *overlay, value []byte) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(value, &cfg); err != nil || cfg == nil {
		return errors.New("the service configuration must be a JSON object")
	}
	for k, v := range cfg {
		if k != ccfServiceConfigField && string(v) != "null" {
			return fmt.Errorf("service configuration field %s is %v: Charter keeps only %s", k, errNotServed, ccfServiceConfigField)
		}
	}
	raw, has := cfg[ccfServiceConfigField]
	_, had, err := o.Get(govwire.MapRecovery, "threshold")
	if err != nil {
		return err
	}
	if !has || string(raw) == "null" {
		if had {
			return errors.New("the recovery threshold cannot be removed, only changed")
		}
		return nil
	}
	var t float64
	if err := json.Unmarshal(raw, &t); err != nil || t != float64(int(t)) || t < 1 || t > maxRecoveryThreshold {
		return fmt.Errorf("recovery_threshold must be an integer in [1, %d]", maxRecoveryThreshold)
	}
	o.Set(govwire.MapRecovery, "threshold", strconv.Itoa(int(t)))
	return nil
}

// hexNodeID matches CCF's node id: 64 hex digits.
var hexNodeID = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// nodeKeyOf resolves a node id as governance's node actions take it to
// the key of its record in public:ccf.gov.nodes.info: a decimal raft id
// is the key itself; CCF's hex id names the record whose public key has
// that id. ok is false for a hex id no record has.
func nodeKeyOf(o *overlay, id string) (string, bool, error) {
	if !hexNodeID.MatchString(id) {
		return id, true, nil
	}
	want := strings.ToLower(id)
	keys, err := o.Keys(govwire.MapNodesInfo)
	if err != nil {
		return "", false, err
	}
	for _, k := range keys {
		raw, ok, err := o.Get(govwire.MapNodesInfo, k)
		if err != nil {
			return "", false, err
		}
		var rec struct {
			PublicKey string `json:"public_key"`
		}
		if !ok || json.Unmarshal([]byte(raw), &rec) != nil {
			continue
		}
		if govwire.NodeIDOfPEM(rec.PublicKey) == want {
			return k, true, nil
		}
	}
	return "", false, nil
}

// ccfNodeKey is the key ccf.kv shows for Charter's node record k: CCF's
// hex id when the record has a public key, else Charter's raft id.
func ccfNodeKey(k, raw string) string {
	var rec struct {
		PublicKey string `json:"public_key"`
	}
	if json.Unmarshal([]byte(raw), &rec) == nil {
		if id := govwire.NodeIDOfPEM(rec.PublicKey); id != "" {
			return id
		}
	}
	return k
}

// JWT keys as constitution.js's set_jwt_public_signing_keys stores them:
// public:ccf.gov.jwt.public_signing_keys_metadata kid → one entry per
// issuer.
type jwtKeyEntry struct {
	Issuer     string         `json:"issuer"`
	Cert       string         `json:"cert,omitempty"`
	JWK        map[string]any `json:"jwk,omitempty"`
	Constraint string         `json:"constraint,omitempty"`
}

var b64url = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// jwkEntry checks one JWK of a JWKS as CCF's checkJwks and
// constitution.js's checkJWK do, and returns its kid and entry.
func jwkEntry(issuer string, i int, v any) (string, jwtKeyEntry, error) {
	at := fmt.Sprintf("jwks.keys[%d]", i)
	k, ok := v.(map[string]any)
	if !ok {
		return "", jwtKeyEntry{}, fmt.Errorf("%s must be an object", at)
	}
	kid, _ := k["kid"].(string)
	kty, ktyOK := k["kty"].(string)
	if kid == "" || !ktyOK {
		return "", jwtKeyEntry{}, fmt.Errorf("%s: kid must be a non-empty string and kty a string", at)
	}
	e := jwtKeyEntry{Issuer: issuer}
	if c, ok := k["issuer"]; ok {
		s, ok := c.(string)
		if !ok {
			return "", jwtKeyEntry{}, fmt.Errorf("%s: issuer must be a string", at)
		}
		e.Constraint = s
	}
	if x5c, ok := k["x5c"]; ok {
		chain, _ := x5c.([]any)
		first, _ := func() (string, bool) {
			if len(chain) == 0 {
				return "", false
			}
			s, ok := chain[0].(string)
			return s, ok
		}()
		der, err := base64.StdEncoding.DecodeString(first)
		if err != nil || first == "" {
			return "", jwtKeyEntry{}, fmt.Errorf("%s: x5c must be a non-empty array of base64 certificates", at)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return "", jwtKeyEntry{}, fmt.Errorf("%s: x5c[0] is not a certificate: %v", at, err)
		}
		e.Cert = first
		return kid, e, nil
	}
	str := func(f string) (string, error) {
		s, _ := k[f].(string)
		if !b64url.MatchString(s) {
			return "", fmt.Errorf("%s: %s key needs %s (base64url)", at, kty, f)
		}
		return s, nil
	}
	switch kty {
	case "RSA":
		n, err := str("n")
		if err != nil {
			return "", jwtKeyEntry{}, err
		}
		ex, err := str("e")
		if err != nil {
			return "", jwtKeyEntry{}, err
		}
		e.JWK = map[string]any{"kty": "RSA", "kid": kid, "n": n, "e": ex}
	case "EC":
		crv, _ := k["crv"].(string)
		if crv != "P-256" && crv != "P-384" && crv != "P-521" {
			return "", jwtKeyEntry{}, fmt.Errorf("%s: crv must be P-256, P-384 or P-521", at)
		}
		x, err := str("x")
		if err != nil {
			return "", jwtKeyEntry{}, err
		}
		y, err := str("y")
		if err != nil {
			return "", jwtKeyEntry{}, err
		}
		e.JWK = map[string]any{"kty": "EC", "kid": kid, "crv": crv, "x": x, "y": y}
	default:
		return "", jwtKeyEntry{}, fmt.Errorf("%s: kty must be RSA or EC when there is no x5c", at)
	}
	return kid, e, nil
}

// setJWTKeys is ccf.setJwtPublicSigningKeys(issuer, metadata, jwks): the
// issuer's keys become jwks's. The metadata is the issuer's record, which
// the constitution writes itself; of it Charter reads key_filter, which
// must be "all" when given (CCF ≤ 5 filtered keys by SGX attestation,
// which Charter does not have).
func setJWTKeys(o *overlay, issuer string, meta, jwks any) error {
	if issuer == "" {
		return errors.New("the issuer is empty")
	}
	m, ok := meta.(map[string]any)
	if !ok {
		return errors.New("metadata must be an object")
	}
	if f, ok := m["key_filter"]; ok && f != "all" {
		return fmt.Errorf("key_filter %v is %v (only \"all\")", f, errNotServed)
	}
	set, _ := jwks.(map[string]any)
	keys, ok := set["keys"].([]any)
	if set == nil || !ok {
		return errors.New("jwks must be {keys: [JWK, …]}")
	}
	add := map[string]jwtKeyEntry{}
	for i, k := range keys {
		kid, e, err := jwkEntry(issuer, i, k)
		if err != nil {
			return err
		}
		add[kid] = e
	}
	return replaceJWTKeys(o, issuer, add)
}

// replaceJWTKeys drops every key of issuer and adds add (kid → entry).
func replaceJWTKeys(o *overlay, issuer string, add map[string]jwtKeyEntry) error {
	m := govwire.MapJWTKeys
	keys, err := o.Keys(m)
	if err != nil {
		return err
	}
	touched := map[string][]jwtKeyEntry{}
	for _, kid := range keys {
		raw, ok, err := o.Get(m, kid)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var entries []jwtKeyEntry
		if err := json.Unmarshal([]byte(raw), &entries); err != nil {
			return fmt.Errorf("%s[%s] is not a list of keys: %v", m, kid, err)
		}
		kept := entries[:0]
		for _, e := range entries {
			if e.Issuer != issuer {
				kept = append(kept, e)
			}
		}
		if len(kept) != len(entries) || add[kid].Issuer != "" {
			touched[kid] = kept
		}
	}
	for kid, e := range add {
		touched[kid] = append(touched[kid], e)
	}
	kids := make([]string, 0, len(touched))
	for kid := range touched {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	for _, kid := range kids {
		if len(touched[kid]) == 0 {
			o.Delete(m, kid)
			continue
		}
		if err := setJSON(o, m, kid, touched[kid]); err != nil {
			return err
		}
	}
	return nil
}

// mapKey maps a CCF key of map m to Charter's: public:ccf.gov.nodes.info
// is keyed by CCF's hex node id (or Charter's raft id), other maps as
// charterKey. ok is false for a key no value can be at.
func (h *ccfHost) mapKey(m string, form ccfMapForm, key []byte) (string, bool) {
	if m != govwire.MapNodesInfo {
		return charterKey(form, key)
	}
	k, ok, err := nodeKeyOf(h.o, string(key))
	if err != nil {
		h.goErr(err)
	}
	return k, ok
}
