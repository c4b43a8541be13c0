package policy

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/grafana/sobek"
	"github.com/grafana/sobek/ast"
	"github.com/grafana/sobek/file"
	"github.com/grafana/sobek/parser"
)

// Limits bound one call. The zero value of each field selects its default.
type Limits struct {
	// Timeout bounds the wall-clock time of one call, and of a runtime's
	// module initialisation. Default 100 ms. Checked every watchdogTick.
	Timeout time.Duration
	// MaxCallStack bounds the JS call depth. Default 1024.
	MaxCallStack int
	// MaxMemoryBytes bounds Go heap growth during a call; see the package
	// documentation for what is measured and how precisely. Default 64 MiB.
	MaxMemoryBytes uint64
}

const (
	DefaultTimeout        = 100 * time.Millisecond
	DefaultMaxCallStack   = 1024
	DefaultMaxMemoryBytes = 64 << 20
)

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxCallStack <= 0 {
		l.MaxCallStack = DefaultMaxCallStack
	}
	if l.MaxMemoryBytes == 0 {
		l.MaxMemoryBytes = DefaultMaxMemoryBytes
	}
	return l
}

// Program is one compiled bundle of ES modules. It is immutable after
// Compile and safe for concurrent use; each concurrent call runs on its own
// pooled runtime.
type Program struct {
	name    string
	limits  Limits
	entry   *sobek.SourceTextModuleRecord
	byPath  map[string]*sobek.SourceTextModuleRecord
	pathOf  map[sobek.ModuleRecord]string
	exports []string
	// generators: some module has a generator function (usesGenerators).
	generators bool
	pool       *pool[*instance]
}

// Compile parses every module of the bundle, resolves and links every
// import, and initialises one runtime (running the modules' top-level code
// once) so that errors surface here rather than at the first call.
//
// modules maps a bundle path ("main.js", "lib/util.js"; a leading "/" is
// ignored) to its source. Import specifiers must be relative ("./x.js",
// "../lib/y.js", resolved against the importing module's directory) or
// bundle-absolute ("/lib/y.js"), and must name a module of the bundle
// exactly: there is no extension guessing, no index.js, no bare specifiers
// and no way above the bundle root. Errors wrap ErrSyntax (with module, line
// and column where sobek reports them), or a RunError if the top-level code
// fails.
func Compile(name string, modules map[string]string, entry string, limits Limits) (p *Program, err error) {
	p = &Program{
		name:   name,
		limits: limits.withDefaults(),
		byPath: make(map[string]*sobek.SourceTextModuleRecord, len(modules)),
		pathOf: make(map[sobek.ModuleRecord]string, len(modules)),
		pool:   newPool[*instance](poolSize()),
	}
	// sobek's linker still panics on some inputs (its "TODO return err"s);
	// a bundle that trips one is a bundle we cannot run.
	defer func() {
		if x := recover(); x != nil {
			p, err = nil, &SyntaxError{Module: name, Msg: fmt.Sprintf("module linking failed: %v", x)}
		}
	}()

	if _, err := p.loadModules(modules); err != nil {
		return nil, err
	}
	ep, err := cleanModulePath(entry)
	if err != nil {
		return nil, err
	}
	if p.entry = p.byPath[ep]; p.entry == nil {
		return nil, &SyntaxError{Module: entry, Msg: "entry module is not in the bundle"}
	}
	p.entry.GetExportedNames(func(names []string) {
		seen := make(map[string]bool, len(names))
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				p.exports = append(p.exports, n)
			}
		}
	})
	sort.Strings(p.exports)

	inst, err := p.newInstance(nil)
	if err != nil {
		return nil, err
	}
	p.pool.add(inst)
	return p, nil
}

// loadModules parses every module of the bundle into p, in path order (so
// the first error reported is always the same one), then links every
// module and checks every import binding — all of them, not only those an
// entry reaches, so a broken module is reported now and not when some later
// version imports it. It returns the module paths in that order.
func (p *Program) loadModules(modules map[string]string) ([]string, error) {
	keys := make([]string, 0, len(modules))
	for k := range modules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	paths := make([]string, 0, len(keys))
	bodies := make(map[string]*ast.Program, len(keys))
	for _, k := range keys {
		mp, err := cleanModulePath(k)
		if err != nil {
			return nil, err
		}
		if _, dup := p.byPath[mp]; dup {
			return nil, &SyntaxError{Module: k, Msg: fmt.Sprintf("two modules have the path %q", mp)}
		}
		body, rec, err := parseModule(mp, modules[k], p.resolve)
		if err != nil {
			return nil, err
		}
		bodies[mp] = body
		p.generators = p.generators || usesGenerators(body)
		p.byPath[mp] = rec
		p.pathOf[rec] = mp
		paths = append(paths, mp)
	}
	for _, mp := range paths {
		if err := p.byPath[mp].Link(); err != nil {
			return nil, linkError(mp, err)
		}
	}
	// sobek reports an import of a name the target does not export only
	// when the module is instantiated; check every binding now.
	for _, mp := range paths {
		if err := p.checkBindings(mp, bodies[mp]); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// Name returns the name given to Compile.
func (p *Program) Name() string { return p.name }

// Limits returns the limits in force, defaults filled in.
func (p *Program) Limits() Limits { return p.limits }

// Exports returns the entry module's export names, sorted. It includes
// names re-exported with `export * from`, but not "default".
func (p *Program) Exports() []string {
	return append([]string(nil), p.exports...)
}

// RequireExports reports an error wrapping ErrNoExport unless every name is
// exported by the entry module as a function (checked on an initialised
// runtime, so `export const f = () => …` counts and `export const f = 1`
// does not).
func (p *Program) RequireExports(names ...string) error {
	inst, err := p.get(nil)
	if err != nil {
		return err
	}
	defer p.put(inst)
	for _, n := range names {
		if _, ok := sobek.AssertFunction(inst.ns.Get(n)); !ok {
			return &RunError{Kind: ErrNoExport, Program: p.name, Fn: n,
				Message: fmt.Sprintf("entry module does not export a function %q (exports: %s)", n, strings.Join(p.exports, ", "))}
		}
	}
	return nil
}

// cleanModulePath turns a bundle key into the canonical path used for
// resolution and in error messages: slash-separated, no leading slash.
func cleanModulePath(k string) (string, error) {
	c := path.Clean("/" + k)[1:]
	if c == "" || c == "." {
		return "", &SyntaxError{Module: k, Msg: "empty module path"}
	}
	if strings.ContainsRune(k, '\\') {
		return "", &SyntaxError{Module: k, Msg: "module paths use forward slashes"}
	}
	return c, nil
}

// resolve is sobek's HostResolveImportedModule. It only reads maps that
// Compile finished writing before any link or call, so it is safe from many
// runtimes at once.
func (p *Program) resolve(referrer any, specifier string) (sobek.ModuleRecord, error) {
	from, ok := referrer.(sobek.ModuleRecord)
	if !ok {
		return nil, fmt.Errorf("import %q from outside a module", specifier)
	}
	importer := p.pathOf[from]
	var target string
	switch {
	case strings.HasPrefix(specifier, "./"), strings.HasPrefix(specifier, "../"):
		target = path.Join(path.Dir(importer), specifier)
	case strings.HasPrefix(specifier, "/"):
		target = path.Clean(specifier[1:])
	default:
		return nil, &SyntaxError{Module: importer, Msg: fmt.Sprintf("import %q: only relative (./, ../) or bundle-absolute (/) specifiers are allowed", specifier)}
	}
	if target == ".." || strings.HasPrefix(target, "../") {
		return nil, &SyntaxError{Module: importer, Msg: fmt.Sprintf("import %q leaves the bundle", specifier)}
	}
	rec, ok := p.byPath[target]
	if !ok {
		return nil, &SyntaxError{Module: importer, Msg: fmt.Sprintf("import %q: no module %q in the bundle", specifier, target)}
	}
	return rec, nil
}

// checkBindings resolves every name that module mp imports, and every name
// it exports, to a binding, as the ES module linker would.
func (p *Program) checkBindings(mp string, body *ast.Program) error {
	rec := p.byPath[mp]
	at := func(idx file.Idx) (int, int) {
		pos := body.File.Position(int(idx) - body.File.Base())
		return pos.Line, pos.Column
	}
	for _, d := range body.ImportEntries {
		if d.FromClause == nil || d.ImportClause == nil {
			continue
		}
		spec := d.FromClause.ModuleSpecifier.String()
		target, err := p.resolve(rec, spec)
		if err != nil {
			return err
		}
		var names []string
		if d.ImportClause.ImportedDefaultBinding != nil {
			names = append(names, "default")
		}
		if n := d.ImportClause.NamedImports; n != nil {
			for _, s := range n.ImportsList {
				names = append(names, s.IdentifierName.String())
			}
		}
		for _, n := range names {
			if b, ambiguous := target.ResolveExport(n); b == nil || ambiguous {
				line, col := at(d.Idx)
				return &SyntaxError{Module: mp, Line: line, Column: col,
					Msg: fmt.Sprintf("module %q does not provide an export named %q (or it is ambiguous)", spec, n)}
			}
		}
	}
	var exported []string
	rec.GetExportedNames(func(names []string) { exported = names })
	for _, n := range exported {
		if b, ambiguous := rec.ResolveExport(n); b == nil || ambiguous {
			return &SyntaxError{Module: mp, Msg: fmt.Sprintf("export %q does not resolve to a binding (or it is ambiguous)", n)}
		}
	}
	return nil
}

func parseModule(mp, src string, resolve sobek.HostResolveImportedModuleFunc) (*ast.Program, *sobek.SourceTextModuleRecord, error) {
	// WithDisableSourceMaps: by default the parser follows a
	// `//# sourceMappingURL=` comment to the file system.
	body, err := parser.ParseFile(nil, mp, src, 0, parser.IsModule, parser.WithDisableSourceMaps)
	if err != nil {
		var list parser.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			e := list[0]
			return nil, nil, &SyntaxError{Module: mp, Line: e.Position.Line, Column: e.Position.Column, Msg: e.Message}
		}
		return nil, nil, &SyntaxError{Module: mp, Msg: err.Error()}
	}
	rec, err := sobek.ModuleFromAST(body, resolve)
	if err != nil {
		return nil, nil, linkError(mp, err)
	}
	return body, rec, nil
}

// linkError converts what sobek's linker returns into a *SyntaxError.
func linkError(mp string, err error) error {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se
	}
	var ce *sobek.CompilerSyntaxError
	if errors.As(err, &ce) {
		out := &SyntaxError{Module: mp, Msg: ce.Message}
		if ce.File != nil {
			pos := ce.File.Position(ce.Offset)
			out.Module, out.Line, out.Column = pos.Filename, pos.Line, pos.Column
		}
		return out
	}
	var re *sobek.CompilerReferenceError
	if errors.As(err, &re) {
		out := &SyntaxError{Module: mp, Msg: "ReferenceError: " + re.Message}
		if re.File != nil {
			pos := re.File.Position(re.Offset)
			out.Module, out.Line, out.Column = pos.Filename, pos.Line, pos.Column
		}
		return out
	}
	return &SyntaxError{Module: mp, Msg: err.Error()}
}
