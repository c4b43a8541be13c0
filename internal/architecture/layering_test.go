package architecture

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/charterlog/charter"

// rule forbids a set of packages from importing another set, directly or
// through any of the module's own packages (transitive), or directly only.
type rule struct {
	why        string
	from       []string // module-relative package patterns: "x" or "x/..."
	never      []string // module-relative patterns ("!x" exempts x), or import paths outside the module
	transitive bool
}

var rules = []rule{
	{
		why:        "cbor, cose, log and policy are pure formats and the sandbox: another Go program imports them without Charter's node",
		from:       []string{"cbor", "cose", "log", "policy"},
		never:      []string{"internal/...", "registry", "client", "cmd/...", "ext:net/http", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:        "client is importable by third parties: it may use only the public formats",
		from:       []string{"client"},
		never:      []string{"internal/...", "registry", "policy", "cmd/..."},
		transitive: true,
	},
	{
		why:        "leaves: durable, fault and stagetime are used by everything, and recovery's cryptography is checked on its own; they use nothing of Charter's",
		from:       []string{"internal/durable", "internal/fault", "internal/recovery", "internal/stagetime"},
		never:      []string{"..."},
		transitive: true,
	},
	{
		why:        "the core below the edge returns errors; only the edge turns them into HTTP",
		from:       []string{"internal/store", "internal/ledger", "internal/replication", "internal/attest", "internal/config"},
		never:      []string{"registry", "internal/gov", "internal/app", "internal/appauth", "internal/apphost", "internal/join", "internal/httpapi", "internal/node", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:        "the HTTP edge is on top: the packages whose errors it answers never reach it",
		from:       []string{"registry", "internal/gov", "internal/app", "internal/appauth", "internal/apphost", "internal/join"},
		never:      []string{"internal/httpapi", "internal/node"},
		transitive: true,
	},
	{
		why:   "storage and the state machine do no networking",
		from:  []string{"internal/store", "internal/ledger", "internal/config", "internal/attest"},
		never: []string{"ext:net/http"},
	},
	{
		why:        "only the mains wire a node; nothing but them and the end-to-end tests reaches into internal/node",
		from:       []string{"...", "!cmd/charterd", "!cmd/charter", "!internal/node", "!internal/e2e"},
		never:      []string{"internal/node", "cmd/..."},
		transitive: true,
	},
	{
		why:        "the CLI talks to nodes over HTTP; it links no node internals (the ledger, Pebble, raft): the wire formats it shares with the node are in packages below the ledger",
		from:       []string{"cmd/charter"},
		never:      []string{"internal/node", "internal/replication", "internal/store", "internal/ledger", "internal/gov", "registry", "ext:github.com/cockroachdb/pebble/v2", "ext:go.etcd.io/raft/v3"},
		transitive: true,
	},
	{
		why:        "the JS app runtime is pure: it runs handlers over the ledger's state through an interface (the CLI links it to build bundles); HTTP, authentication and governance are the edge's",
		from:       []string{"internal/app"},
		never:      []string{"registry", "internal/gov", "internal/appauth", "internal/node", "internal/ledger", "internal/store", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:        "governance's wire format is shared by the node and the CLI: it sits on the formats alone",
		from:       []string{"internal/govwire", "registry/policyinput"},
		never:      []string{"...", "!cbor", "!cose", "!log", "!policy", "ext:net/http", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:        "authenticating an app request reads the governed maps through an interface: it needs neither governance nor the ledger",
		from:       []string{"internal/appauth"},
		never:      []string{"internal/gov", "internal/ledger", "internal/store", "internal/node"},
		transitive: true,
	},
	{
		why:   "the JS app runtime does no networking",
		from:  []string{"internal/app"},
		never: []string{"ext:net/http"},
	},
	{
		why:   "one CBOR policy: the formats, the client and the node decode through package cbor, never the library's lenient default mode",
		from:  []string{"cose", "log", "client", "internal/..."},
		never: []string{"ext:github.com/fxamacker/cbor/v2"},
	},
	{
		why:        "apphost runs app transactions below the HTTP edge: it returns errors, the edge answers them",
		from:       []string{"internal/apphost"},
		never:      []string{"registry", "internal/appauth", "internal/httpapi", "internal/node", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:   "apphost does no networking (the ledger's metrics link net/http below it)",
		from:  []string{"internal/apphost"},
		never: []string{"ext:net/http"},
	},
	{
		why:   "governance is pure: its routes and its answers to errors are the HTTP edge's",
		from:  []string{"internal/gov"},
		never: []string{"registry", "internal/httpapi", "ext:net/http", "ext:github.com/go-chi/chi/v5"},
	},
	{
		why:   "the join protocol speaks no HTTP and holds no consensus or storage: the edge answers it, the node hands it raft and the ledger",
		from:  []string{"internal/join"},
		never: []string{"registry", "internal/node", "internal/replication", "internal/store", "internal/ledger", "ext:net/http", "ext:github.com/go-chi/chi/v5"},
	},
	{
		why:        "the identity files are a leaf of the node: keys and certificates, nothing of the ledger or the edge",
		from:       []string{"internal/identity"},
		never:      []string{"registry", "internal/gov", "internal/app", "internal/appauth", "internal/apphost", "internal/join", "internal/httpapi", "internal/node", "internal/ledger", "internal/store", "internal/replication", "ext:net/http"},
		transitive: true,
	},
	{
		why:   "the Ready loop speaks no HTTP: it hands messages to a Transport and takes them as bytes; the HTTP is internal/peer's",
		from:  []string{"internal/replication"},
		never: []string{"ext:net/http"},
	},
	{
		why:        "how nodes talk is below the edge: the edge mounts the peer routes and answers their errors, the peer transport never reaches it",
		from:       []string{"internal/peer"},
		never:      []string{"registry", "internal/app", "internal/appauth", "internal/apphost", "internal/httpapi", "internal/node", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:        "the joining node's client is below the edge and the wiring: the node hands it its keys and clients",
		from:       []string{"internal/joinclient"},
		never:      []string{"internal/httpapi", "internal/node", "internal/replication"},
		transitive: true,
	},
	{
		why:        "the join protocol's records and admission need no ledger: the node hands it the state through an interface (the CLI links join to check recorded quotes)",
		from:       []string{"internal/join"},
		never:      []string{"internal/ledger", "internal/store", "internal/gov"},
		transitive: true,
	},
	{
		why:        "the node's jobs below the wiring (the ledger secrets' upkeep, recovering a network from its ledger files, raft's membership) return errors and speak no HTTP: the node hands them the ledger and raft through interfaces",
		from:       []string{"internal/ledgersecrets", "internal/restore", "internal/membership"},
		never:      []string{"registry", "internal/gov", "internal/app", "internal/appauth", "internal/apphost", "internal/httpapi", "internal/peer", "internal/node", "cmd/...", "ext:github.com/go-chi/chi/v5"},
		transitive: true,
	},
	{
		why:   "the node's jobs below the wiring do no networking (the ledger's metrics link net/http below them)",
		from:  []string{"internal/ledgersecrets", "internal/restore", "internal/membership"},
		never: []string{"ext:net/http"},
	},
	{
		why:        "the node's jobs are wired by the node alone (and `charterd recover` imports with internal/restore before the node runs)",
		from:       []string{"...", "!internal/node", "!cmd/charterd", "!internal/e2e"},
		never:      []string{"internal/ledgersecrets", "internal/restore", "internal/membership"},
		transitive: true,
	},
	{
		why:        "the replication core does not know the edge or governance",
		from:       []string{"internal/replication"},
		never:      []string{"registry", "internal/gov", "internal/app", "internal/node"},
		transitive: true,
	},
}

// debts are arrows that break a rule today, each with the step that will
// remove it ("from -> to"). The test fails if one of them goes away, so
// that this list (and ARCHITECTURE.md) stays true: remove it here when the
// step lands. Issue 16's re-layout paid the last ones; add one only with
// the plan that pays it.
var debts = []string{}

type pkg struct {
	path    string
	imports []string // direct
	deps    []string // transitive, the module's own and others
}

func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}}\t{{join .Imports \" \"}}\t{{join .Deps \" \"}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*pkg{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			t.Fatalf("go list line %q", sc.Text())
		}
		pkgs[rel(f[0])] = &pkg{path: rel(f[0]), imports: rels(strings.Fields(f[1])), deps: rels(strings.Fields(f[2]))}
	}
	return pkgs
}

// rel names a package as the rules do: module-relative for the module's
// own, "ext:" and the import path for anything else (so the standard
// library's internal/... is not the module's).
func rel(p string) string {
	if p == module {
		return "."
	}
	if r, ok := strings.CutPrefix(p, module+"/"); ok {
		return r
	}
	return "ext:" + p
}

func rels(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = rel(p)
	}
	return out
}

// match reports whether p matches pattern ("x", "x/...", or "..." for
// every package of the module).
func match(pattern, p string) bool {
	switch {
	case pattern == "...":
		return isModulePackage(p)
	case strings.HasPrefix(pattern, "ext:") != strings.HasPrefix(p, "ext:"):
		return false
	case strings.HasSuffix(pattern, "/..."):
		base := strings.TrimSuffix(pattern, "/...")
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

var modulePackages map[string]bool

func isModulePackage(p string) bool { return modulePackages[p] }

func matchesFrom(from []string, p string) bool {
	in := false
	for _, f := range from {
		if neg, ok := strings.CutPrefix(f, "!"); ok {
			if match(neg, p) {
				return false
			}
			continue
		}
		in = in || match(f, p)
	}
	return in
}

// violations lists every "from -> to" arrow that breaks a rule.
func violations(pkgs map[string]*pkg) map[string]string {
	out := map[string]string{}
	for _, r := range rules {
		for _, p := range pkgs {
			if !matchesFrom(r.from, p.path) || strings.HasSuffix(p.path, "test") {
				continue
			}
			targets := p.imports
			if r.transitive {
				targets = p.deps
			}
			for _, to := range targets {
				if to == p.path {
					continue
				}
				// "!x" in never exempts x from the patterns before it.
				if matchesFrom(r.never, to) {
					out[p.path+" -> "+to] = r.why
				}
			}
		}
	}
	return out
}

// TestLayering: no import arrow breaks a rule, but for the debts listed,
// and each debt is still there.
func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	modulePackages = map[string]bool{}
	for p := range pkgs {
		modulePackages[p] = true
	}
	found := violations(pkgs)
	// A debt is an arrow; everything it drags in transitively is the same
	// debt.
	covered := func(v string) bool {
		from, to, _ := strings.Cut(v, " -> ")
		for _, d := range debts {
			df, dt, _ := strings.Cut(d, " -> ")
			if df == from && dt == to {
				return true
			}
			// from reaches to through a debt's arrow: from is (or
			// depends on) the debt's importer, and to is (or is a
			// dependency of) what it imports.
			if from != df && !slices.Contains(pkgs[from].deps, df) {
				continue
			}
			if to == dt {
				return true
			}
			if dp, ok := pkgs[dt]; ok && slices.Contains(dp.deps, to) {
				return true
			}
		}
		return false
	}
	var bad []string
	for v, why := range found {
		if !covered(v) {
			bad = append(bad, v+": "+why)
		}
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Errorf("import arrow the wrong way: %s", b)
	}
	for _, d := range debts {
		from, to, _ := strings.Cut(d, " -> ")
		p, ok := pkgs[from]
		if !ok || !slices.Contains(p.imports, to) {
			t.Errorf("the debt %q is paid: remove it from debts and from ARCHITECTURE.md", d)
		}
	}
}

// TestLayeringCatchesAWrongArrow: the rules do fail on an arrow added the
// wrong way (the store importing the edge), so the test above can fail.
func TestLayeringCatchesAWrongArrow(t *testing.T) {
	pkgs := listPackages(t)
	modulePackages = map[string]bool{}
	for p := range pkgs {
		modulePackages[p] = true
	}
	st := pkgs["internal/store"]
	st.imports = append(st.imports, "registry", "ext:net/http")
	st.deps = append(st.deps, "registry", "ext:net/http")
	// The CLI reaching the ledger through the governance wire format, or
	// through the app runtime, is caught at each step.
	for _, from := range []string{"internal/govwire", "internal/app", "cmd/charter"} {
		pkgs[from].imports = append(pkgs[from].imports, "internal/ledger")
		pkgs[from].deps = append(pkgs[from].deps, "internal/ledger", "internal/store")
	}
	// The node's jobs reaching the edge, or the edge reaching one of them
	// around the node, is caught.
	rs := pkgs["internal/restore"]
	rs.imports = append(rs.imports, "internal/httpapi", "ext:net/http")
	rs.deps = append(rs.deps, "internal/httpapi")
	hp := pkgs["internal/httpapi"]
	hp.imports = append(hp.imports, "internal/ledgersecrets")
	hp.deps = append(hp.deps, "internal/ledgersecrets")
	found := violations(pkgs)
	for _, want := range []string{
		"internal/store -> registry", "internal/store -> ext:net/http",
		"internal/govwire -> internal/ledger", "internal/app -> internal/ledger",
		"cmd/charter -> internal/ledger", "cmd/charter -> internal/store",
		"internal/restore -> internal/httpapi", "internal/restore -> ext:net/http",
		"internal/httpapi -> internal/ledgersecrets",
	} {
		if _, ok := found[want]; !ok {
			t.Errorf("the rules let %q through", want)
		}
	}
	// An exemption holds: the wire format may import the formats.
	if why, ok := found["internal/govwire -> cose"]; ok {
		t.Errorf("internal/govwire -> cose is refused (%s), though cose is exempted", why)
	}
}
