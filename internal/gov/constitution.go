package gov

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/policy"
)

// DefaultConstitution is the constitution a network starts with unless its
// creator gives another: a proposal passes when a strict majority of active
// members vote for it, and the actions of the governance issue are defined
// in JS. See constitution.js.
//
//go:embed constitution.js
var DefaultConstitution string

// constitution is a compiled constitution module. Its contract (CCF's):
//
//	export function validate(input)                     → {valid: bool, description?: string}
//	export function resolve(proposal, proposerId, votes) → "Open" | "Accepted" | "Rejected"
//	export function apply(proposal, proposalId)          → writes through charter.kv; throws to fail
//
// where input and proposal are the proposal's JSON text and votes is
// [{member_id, vote}]. During a call the global `charter` is the host API:
//
//	charter.kv.get(map, key) → string | undefined   (applied state plus this operation's writes)
//	charter.kv.set(map, key, value)                 (apply only; public maps the nodes do not maintain)
//	charter.kv.delete(map, key)                     (apply only; likewise)
//	charter.kv.keys(map) → string[]                 (sorted)
//	charter.memberIdOf(pem) → string                (hex SHA-256 of the certificate's DER; throws if not one)
//	charter.nodeKeyOf(id) → string                  (a node's record key: a raft id as is, CCF's hex node
//	                                                 id resolved by the record's public key; throws if none)
//	charter.validateAppBundle(bundle)               (bundle: object or JSON text; throws the node's
//	                                                 app validator's message if it refuses the
//	                                                 bundle; does nothing when the node has none)
//
// Beside it, the global `ccf` is CCF's constitution API (ccfhost.go), so
// constitutions written for CCF run unchanged.
type constitution struct {
	p *policy.Program
	// env holds Config.ValidateApp (behind charter.validateAppBundle) and
	// the service certificate.
	env hostEnv
}

// constitution returns the compiled constitution in force in o.
func (s *Service) constitution(o *overlay) (*constitution, error) {
	src, ok, err := o.Get(govwire.MapConstitution, govwire.KeyConstitution)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: the network has no constitution", ErrConstitution)
	}
	if s.prog.p != nil && s.prog.source == src {
		return &constitution{p: s.prog.p, env: s.hostEnv()}, nil
	}
	p, err := CompileConstitution(src, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	s.prog.source, s.prog.p = src, p
	return &constitution{p: p, env: s.hostEnv()}, nil
}

func (s *Service) hostEnv() hostEnv {
	env := hostEnv{validateApp: s.cfg.ValidateApp, stateDigest: s.stateDigest}
	if s.cfg.ServiceCert != nil {
		env.serviceCertDER = s.cfg.ServiceCert.Raw
	}
	return env
}

// CompileConstitution compiles a constitution and checks its exports.
func CompileConstitution(src string, limits policy.Limits) (*policy.Program, error) {
	p, err := policy.Compile("constitution", map[string]string{"constitution.js": src}, "constitution.js", limits)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConstitution, err)
	}
	have := map[string]bool{}
	for _, e := range p.Exports() {
		have[e] = true
	}
	for _, want := range []string{"validate", "resolve", "apply"} {
		if !have[want] {
			return nil, fmt.Errorf("%w: it does not export %s", ErrConstitution, want)
		}
	}
	return p, nil
}

// host returns the `charter` global for a call over o; writable only for
// apply. validateApp may be nil: charter.validateAppBundle then accepts
// every bundle (the constitution's own shape checks still apply).
func host(o *overlay, writable bool, validateApp func([]byte) error) map[string]any {
	// Go functions that return an error throw it in JS.
	kv := map[string]any{
		"get": func(m, key string) (any, error) {
			v, ok, err := o.Get(m, key)
			if err != nil || !ok {
				return nil, err
			}
			return v, nil
		},
		"keys": func(m string) ([]any, error) {
			keys, err := o.Keys(m)
			out := make([]any, len(keys))
			for i, k := range keys {
				out[i] = k
			}
			return out, err
		},
	}
	if writable {
		kv["set"] = func(m, key, value string) error {
			if err := governanceWritable(m); err != nil {
				return err
			}
			o.Set(m, key, value)
			return nil
		}
		kv["delete"] = func(m, key string) error {
			if err := governanceWritable(m); err != nil {
				return err
			}
			o.Delete(m, key)
			return nil
		}
	}
	return map[string]any{"charter": map[string]any{
		"kv": kv,
		"memberIdOf": func(pemText string) (string, error) {
			c, err := parseCertPEM(pemText)
			if err != nil {
				return "", fmt.Errorf("memberIdOf: %v", err)
			}
			sum := sha256.Sum256(c.Raw)
			return hex.EncodeToString(sum[:]), nil
		},
		// nodeKeyOf resolves a node id as the node actions take it
		// (Charter's raft id, or CCF's hex id of the node's key) to its
		// record's key in public:ccf.gov.nodes.info; an unknown hex id
		// throws.
		"nodeKeyOf": func(id string) (string, error) {
			k, ok, err := nodeKeyOf(o, id)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("no node has id %s", id)
			}
			return k, nil
		},
		"validateAppBundle": func(bundle any) error {
			var raw []byte
			if s, ok := bundle.(string); ok {
				raw = []byte(s)
			} else {
				b, err := json.Marshal(bundle)
				if err != nil {
					return fmt.Errorf("the bundle is not JSON: %v", err)
				}
				raw = b
			}
			return callValidator(validateApp, raw)
		},
	}}
}

func (c *constitution) validate(ctx context.Context, o *overlay, proposal string) error {
	g, _ := hostGlobals(o, false, c.env)
	out, err := c.p.CallWith(ctx, g, "validate", proposal)
	if err != nil {
		return fmt.Errorf("%w: validate: %v", ErrConstitution, err)
	}
	m, ok := out.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: validate returned %T, want {valid, description}", ErrConstitution, out)
	}
	if valid, _ := m["valid"].(bool); !valid {
		desc, _ := m["description"].(string)
		return fmt.Errorf("%w: %s", ErrInvalidProposal, desc)
	}
	return nil
}

type vote struct {
	MemberID string `json:"member_id"`
	Vote     bool   `json:"vote"`
}

// resolve evaluates every ballot, asks the constitution for the proposal's
// state, and applies it if accepted. apply runs on a nested overlay whose
// writes are kept only if it succeeds; a throwing apply fails the proposal.
// A proposal that changes the constitution drops every other open one.
func (s *Service) resolve(ctx context.Context, o *overlay, c *constitution, id, proposal string, info *govwire.ProposalInfo) error {
	members := make([]string, 0, len(info.Ballots))
	for m := range info.Ballots {
		members = append(members, m)
	}
	sort.Strings(members)
	votes := []any{}
	final := map[string]bool{}
	failures := map[string]string{}
	for _, m := range members {
		b, err := policy.Compile("ballot", map[string]string{"ballot.js": info.Ballots[m]}, "ballot.js", s.cfg.Limits)
		var out any
		if err == nil {
			g, _ := hostGlobals(o, false, hostEnv{})
			out, err = b.CallWith(ctx, g, "vote", proposal, info.ProposerID)
		}
		v, isBool := out.(bool)
		if err != nil || !isBool {
			if err == nil {
				err = fmt.Errorf("vote returned %T, not a boolean", out)
			}
			failures[m] = err.Error()
			continue
		}
		final[m] = v
		votes = append(votes, map[string]any{"member_id": m, "vote": v})
	}
	info.VoteFailures = nil
	if len(failures) > 0 {
		info.VoteFailures = failures
	}
	g, _ := hostGlobals(o, false, c.env)
	out, err := c.p.CallWith(ctx, g, "resolve", proposal, info.ProposerID, votes)
	if err != nil {
		return fmt.Errorf("%w: resolve: %v", ErrConstitution, err)
	}
	state, _ := out.(string)
	switch state {
	case govwire.StateOpen:
		return nil
	case govwire.StateRejected:
		info.State, info.FinalVotes = govwire.StateRejected, final
	case govwire.StateAccepted:
		info.FinalVotes = final
		nested := newOverlay(o)
		g, ccfHost := hostGlobals(nested, true, c.env)
		_, err := c.p.CallWith(ctx, g, "apply", proposal, id)
		if err == nil {
			// What apply staged in CCF's JS app maps becomes the bundle.
			err = ccfHost.finish()
		}
		if err != nil {
			info.State, info.Failure = govwire.StateFailed, &govwire.Failure{Reason: err.Error()}
			s.log.Info("proposal failed in apply", "proposal_id", id, "err", err)
			break
		}
		info.State = govwire.StateAccepted
		for _, w := range nested.order {
			if w.Delete {
				o.Delete(w.Map, string(w.Key))
			} else {
				o.Set(w.Map, string(w.Key), string(w.Value))
			}
		}
		if nested.changed(govwire.MapConstitution) {
			if err := dropOpen(o, id); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: resolve returned %v, want Open, Accepted or Rejected", ErrConstitution, out)
	}
	return nil
}

// dropOpen marks every open proposal but except as Dropped: they were
// made under a constitution that no longer holds.
func dropOpen(o *overlay, except string) error {
	ids, err := o.Keys(govwire.MapProposalsInfo)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == except {
			continue
		}
		raw, _, err := o.Get(govwire.MapProposalsInfo, id)
		if err != nil {
			return err
		}
		var info govwire.ProposalInfo
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return err
		}
		if info.State != govwire.StateOpen {
			continue
		}
		info.State = govwire.StateDropped
		if err := setJSON(o, govwire.MapProposalsInfo, id, info); err != nil {
			return err
		}
	}
	return nil
}
