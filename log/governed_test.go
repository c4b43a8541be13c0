package log_test

import (
	"testing"

	"github.com/charterlog/charter/log"
)

func TestGoverned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writer log.Writer
		public bool
	}{
		{"public:ccf.gov.members.info", log.WrittenByGovernance, true},
		{"public:ccf.internal.x", log.WrittenByGovernance, true},
		{"public:scitt.policy", log.WrittenByGovernance, true},
		{"public:scitt.issuer_keys", log.WrittenByGovernance, true},
		{"public:scitt.configuration", log.WrittenByGovernance, true},
		{"public:charter.nodes", log.WrittenByNodes, true},
		// The private forms of the namespaces.
		{"ccf.gov.members.info", log.WrittenByGovernance, false},
		{"scitt.policy", log.WrittenByGovernance, false},
		{"charter.nodes", log.WrittenByNodes, false},
		// Applications' maps, including near misses.
		{"public:scitt", log.NotGoverned, true},
		{"public:scittpolicy", log.NotGoverned, true},
		{"public:ccf.government", log.NotGoverned, true},
		{"public:app.scitt.policy", log.NotGoverned, true},
		{"Public:scitt.policy", log.NotGoverned, false},
		{"private:0123abcd", log.NotGoverned, false},
		{"user_accounts:scitt.", log.NotGoverned, false},
		{"", log.NotGoverned, false},
	} {
		g, public := log.Governed(tc.name)
		if g.Writer != tc.writer || public != tc.public {
			t.Errorf("Governed(%q) = %v, %v; want %v, %v", tc.name, g.Writer, public, tc.writer, tc.public)
		}
		if log.IsGoverned(tc.name) != (tc.writer != log.NotGoverned) {
			t.Errorf("IsGoverned(%q) = %v", tc.name, !(tc.writer != log.NotGoverned))
		}
		if log.IsNodeMaintained(tc.name) != (tc.writer == log.WrittenByNodes) {
			t.Errorf("IsNodeMaintained(%q) wrong", tc.name)
		}
	}
	// The list is the callers' to read, not to change.
	ps := log.GovernedPrefixes()
	ps[0].Writer = log.NotGoverned
	if !log.IsGoverned(ps[0].Prefix + "x") {
		t.Error("changing the returned list changed the rules")
	}
	for _, p := range log.GovernedPrefixes() {
		if len(p.Prefix) < len("public:x.") || p.Prefix[:len("public:")] != "public:" || p.Prefix[len(p.Prefix)-1] != '.' {
			t.Errorf("prefix %q: want public:<namespace>.", p.Prefix)
		}
	}
}
