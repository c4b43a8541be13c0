package log

import (
	"slices"
	"strings"
)

// Governed maps: the one list of the key-value maps that belong to the
// service rather than to an application. Every rule about who may touch a
// map by its name is decided here, by the list governedPrefixes:
//
//   - an app transaction (TxApp) may write no governed map: the JS runtime
//     (internal/app) throws when an app tries, and every node refuses, when
//     it applies the transaction, an app write set that names one
//     (internal/ledger), so that neither a malicious app host nor a
//     malicious leader can change governance through an app;
//   - a write set (TxWrites: governance, a node's join) may write the maps
//     governance owns, and never those the nodes maintain themselves;
//   - an app may read, read-only, the public maps governance owns (CCF's
//     rule: an app reads public:ccf.gov.users.certs to know its users), and
//     may not read the maps the nodes maintain: the nodes write those
//     outside the ledger's transactions (public:charter.nodes is written
//     when raft applies a configuration change), so a read of them could
//     not be checked alike on every node when the transaction applies.
//
// A governed prefix names public maps (in clear in the ledger). The same
// namespace without "public:" (a private map named "ccf.gov.x" or
// "scitt.x") is governed too, and inaccessible to apps, as CCF makes
// private ccf.gov.* and ccf.internal.* maps illegal in an app context.
var governedPrefixes = [...]GovernedPrefix{
	// CCF's governance maps: members, users, proposals, the constitution,
	// the JS app bundle and runtime options, trusted node code, JWT
	// issuers, recovery (internal/govwire/maps.go).
	{Prefix: "public:ccf.gov.", Writer: WrittenByGovernance},
	// CCF's internal maps. Charter has none today; the namespace stays
	// CCF's, read-only to apps as in CCF.
	{Prefix: "public:ccf.internal.", Writer: WrittenByGovernance},
	// SCITT's governed configuration: public:scitt.configuration,
	// public:scitt.policy (the registration policy) and
	// public:scitt.issuer_keys (issuer keys trusted for kid-only
	// statements), set by the set_scitt_* proposals.
	{Prefix: "public:scitt.", Writer: WrittenByGovernance},
	// Maps the nodes maintain themselves: public:charter.nodes.
	{Prefix: "public:charter.", Writer: WrittenByNodes},
}

// GovernedPrefixes returns the list of governed map families, in the
// order they are matched (a copy: the list is fixed at build time).
func GovernedPrefixes() []GovernedPrefix { return slices.Clone(governedPrefixes[:]) }

// GovernedPrefix is one family of governed maps: every map whose name
// begins with Prefix, or with Prefix less "public:".
type GovernedPrefix struct {
	Prefix string
	Writer Writer
}

// Writer says which transactions may write a family of governed maps.
type Writer int

const (
	// NotGoverned: an application's map, which app transactions write.
	NotGoverned Writer = iota
	// WrittenByGovernance: governance write sets (TxWrites) write these
	// maps; apps may read the public ones.
	WrittenByGovernance
	// WrittenByNodes: only the nodes write these, outside any write set;
	// no transaction may name them, and apps may not read them.
	WrittenByNodes
)

// Governed returns the family of governed maps map m belongs to, and
// whether m is public ("public:" prefix). m's Writer is NotGoverned when m
// is an application's map.
func Governed(m string) (g GovernedPrefix, public bool) {
	public = strings.HasPrefix(m, "public:")
	for _, p := range governedPrefixes {
		if strings.HasPrefix(m, p.Prefix) {
			return p, public
		}
		if !public && strings.HasPrefix(m, strings.TrimPrefix(p.Prefix, "public:")) {
			return p, public
		}
	}
	return GovernedPrefix{}, public
}

// IsGoverned reports whether map m belongs to the service (governance or
// the nodes) rather than to an application: no app transaction may write
// it. See GovernedPrefixes.
func IsGoverned(m string) bool {
	g, _ := Governed(m)
	return g.Writer != NotGoverned
}

// IsNodeMaintained reports whether map m is maintained by the nodes
// themselves: no write set, of governance or of an app, may write it.
func IsNodeMaintained(m string) bool {
	g, _ := Governed(m)
	return g.Writer == WrittenByNodes
}
