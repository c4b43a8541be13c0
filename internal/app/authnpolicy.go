package app

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Authentication policy names, CCF's.
const (
	PolicyUserCert      = "user_cert"
	PolicyMemberCert    = "member_cert"
	PolicyAnyCert       = "any_cert"
	PolicyJWT           = "jwt"
	PolicyUserCOSESign1 = "user_cose_sign1"
	PolicyNoAuth        = "no_auth"
)

var knownPolicies = []string{PolicyUserCert, PolicyMemberCert, PolicyAnyCert, PolicyJWT, PolicyUserCOSESign1, PolicyNoAuth}

// AuthnPolicy is one entry of an endpoint's authn_policies: a single
// policy (Name), or all_of (AllOf, every one of which must pass). The
// bundle declares it; internal/appauth checks a request against it.
type AuthnPolicy struct {
	Name  string
	AllOf []string
}

func (p AuthnPolicy) String() string {
	if p.AllOf != nil {
		return "all_of[" + strings.Join(p.AllOf, ",") + "]"
	}
	return p.Name
}

// MarshalJSON writes the form it was parsed from.
func (p AuthnPolicy) MarshalJSON() ([]byte, error) {
	if p.AllOf != nil {
		return json.Marshal(map[string][]string{"all_of": p.AllOf})
	}
	return json.Marshal(p.Name)
}

// UnmarshalJSON accepts a known policy name or {"all_of": [known names]}.
func (p *AuthnPolicy) UnmarshalJSON(r []byte) error {
	var name string
	if err := json.Unmarshal(r, &name); err == nil {
		if err := checkPolicyName(name); err != nil {
			return err
		}
		*p = AuthnPolicy{Name: name}
		return nil
	}
	var all struct {
		AllOf []string `json:"all_of"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&all); err != nil || len(all.AllOf) == 0 {
		return fmt.Errorf(`want a policy name or {"all_of": [names]}, got %s`, r)
	}
	for _, n := range all.AllOf {
		if err := checkPolicyName(n); err != nil {
			return fmt.Errorf("all_of: %w", err)
		}
	}
	*p = AuthnPolicy{AllOf: all.AllOf}
	return nil
}

// ParseAuthnPolicies parses an endpoint's authn_policies. Unknown names,
// an empty all_of, and any other JSON are errors.
func ParseAuthnPolicies(raw []json.RawMessage) ([]AuthnPolicy, error) {
	out := make([]AuthnPolicy, len(raw))
	for i, r := range raw {
		if err := out[i].UnmarshalJSON(r); err != nil {
			return nil, fmt.Errorf("authn_policies[%d]: %w", i, err)
		}
	}
	return out, nil
}

func checkPolicyName(n string) error {
	for _, k := range knownPolicies {
		if n == k {
			return nil
		}
	}
	return fmt.Errorf("unknown authentication policy %q (want one of %s)", n, strings.Join(knownPolicies, ", "))
}
