package policy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/grafana/sobek"
)

// Modules is a bundle of ES modules compiled and linked once, with no fixed
// entry module and no runtime of its own: the form JS applications need,
// where every endpoint names its own module and function, host globals (the
// `ccf` object) must exist before any module's top-level code runs, and
// each call gets a fresh interpreter (CCF's default), so module top-level
// code runs once per call and nothing a call leaves behind — module state,
// globals, changes to built-ins — reaches the next one.
//
// The sandbox is the one Program uses: the same lockdown (no clock, no
// Math.random, no eval or Function), the same resolution of relative
// imports, the same watchdog and Limits. What is reused between calls is
// what sobek can share: the parsed, linked and compiled module records.
// A Modules is immutable and safe for concurrent use.
type Modules struct {
	p *Program
	// realms are the hardened runtimes kept between calls (see realm).
	realms *pool[*realm]
	// rescued counts calls that failed in a realm and then succeeded on a
	// fresh runtime; at rescuesToFresh the bundle evidently needs mutable
	// built-ins and every later call gets a fresh runtime.
	rescued atomic.Int32
}

// rescuesToFresh is how many rescued calls make a Modules stop using
// realms. More than one, because a rescue can also come from the state
// changing between the two attempts (a KV value, a key generated at
// random).
const rescuesToFresh = 3

// CompileModules parses, compiles and links every module of the bundle, as
// Compile does, and checks every import and export binding, but runs no
// code. Errors wrap ErrSyntax and name the module.
func CompileModules(name string, modules map[string]string, limits Limits) (m *Modules, err error) {
	p := &Program{
		name:   name,
		limits: limits.withDefaults(),
		byPath: make(map[string]*sobek.SourceTextModuleRecord, len(modules)),
		pathOf: make(map[sobek.ModuleRecord]string, len(modules)),
	}
	defer func() {
		if x := recover(); x != nil {
			m, err = nil, &SyntaxError{Module: name, Msg: fmt.Sprintf("module linking failed: %v", x)}
		}
	}()
	paths, err := p.loadModules(modules)
	if err != nil {
		return nil, err
	}
	for _, mp := range paths {
		// Compile every module now (sobek does it lazily, once, on first
		// instantiation) so that no call pays for it and compile errors
		// surface here.
		if err := p.byPath[mp].InitializeEnvironment(); err != nil {
			return nil, linkError(mp, err)
		}
	}
	return &Modules{p: p, realms: newPool[*realm](poolSize())}, nil
}

// Fresh reports whether every call gets a fresh runtime: realms are
// unusable with this sobek, or the bundle needed mutable built-ins (see
// Run).
func (m *Modules) Fresh() bool { return !moduleFieldsOK || m.rescued.Load() >= rescuesToFresh }

// Name returns the name given to CompileModules.
func (m *Modules) Name() string { return m.p.name }

// Limits returns the limits in force, defaults filled in.
func (m *Modules) Limits() Limits { return m.p.limits }

// Has reports whether path (leading "/" ignored) is a module of the bundle.
func (m *Modules) Has(path string) bool {
	mp, err := cleanModulePath(path)
	return err == nil && m.p.byPath[mp] != nil
}

// Exports returns the export names of module path, sorted, as declared in
// the source (including `export * from` re-exports, excluding "default").
// It runs no code, so it cannot tell a function from another value; see
// Evaluate for that.
func (m *Modules) Exports(path string) ([]string, error) {
	mp, err := cleanModulePath(path)
	if err != nil {
		return nil, err
	}
	rec := m.p.byPath[mp]
	if rec == nil {
		return nil, &SyntaxError{Module: path, Msg: "no such module in the bundle"}
	}
	var out []string
	rec.GetExportedNames(func(names []string) {
		seen := make(map[string]bool, len(names))
		for _, n := range names {
			if !seen[n] && n != "default" {
				seen[n] = true
				out = append(out, n)
			}
		}
	})
	sort.Strings(out)
	return out, nil
}

// Invocation is one call of an exported function on a fresh runtime.
type Invocation struct {
	// Module is the bundle path of the module exporting Func.
	Module string
	// Func is the exported function to call.
	Func string
	// Setup, if set, runs on the fresh, locked-down runtime before any
	// module code, to install host globals. It is host code and runs
	// without the watchdog; it must not run JS.
	Setup func(rt *sobek.Runtime) error
	// Args, if set, builds the arguments. It runs under the watchdog, after
	// the module's top-level code.
	Args func(rt *sobek.Runtime) ([]sobek.Value, error)
	// Result, if set, receives the function's return value. It runs under
	// the watchdog, so it may run JS (getters, toJSON, JSON.stringify); a
	// JS exception it returns (or panics with, as sobek does) is
	// classified like one thrown by the function.
	Result func(rt *sobek.Runtime, v sobek.Value) error
	// Globals are the names of the globals Setup assigns. In a realm
	// they are the only writable properties of the global object, which
	// can have no others (see realm).
	Globals []string
	// Discard, if set, lets Run make the call in a reused realm: if the
	// call fails there, Run calls Discard and makes the call again on a
	// fresh runtime, so Discard must forget everything Setup, Args,
	// Result and the host functions recorded for the first attempt (its
	// reads and writes, its log lines). Without Discard every call gets a
	// fresh runtime.
	Discard func()
}

// Run runs inv.Setup on a sandboxed runtime, evaluates inv.Module (and
// what it imports), calls inv.Func and hands its result to inv.Result.
// Module evaluation, the call and Result all run under one watchdog, so
// the limits bound them together.
//
// The runtime is fresh, or, when inv.Discard is set, a realm: a runtime
// reused under rules that let no call see what an earlier one did (see
// realm), at a fraction of a fresh runtime's cost. A realm's built-ins are
// frozen, which a fresh runtime's are not; so a call that fails in a realm
// for any reason but a limit is made again on a fresh runtime after
// inv.Discard, and its outcome there is the call's. An app that does
// patch built-ins thus behaves as on CCF, at twice the cost, until
// rescuesToFresh such calls switch its Modules to fresh runtimes only.
//
// Errors: a *RunError (ErrThrown, ErrTimeout, ErrMemory, ErrStackOverflow,
// ErrNoExport, ErrPanic) for what the JS code did; an error returned by
// Setup, Args or Result that is not a JS exception or interruption is
// returned as it is.
//
// A host function that must abort the call (e.g. its storage failed) can
// call rt.Interrupt with its error: Run then returns a *RunError of kind
// ErrTimeout whose message is that error; the host should keep its own
// record of the failure and prefer it.
func (m *Modules) Run(ctx context.Context, inv Invocation) error {
	if inv.Discard == nil || m.Fresh() {
		_, err := m.run(ctx, inv, false)
		return err
	}
	rec, err := m.record(ctx, inv)
	if err != nil {
		return err
	}
	r, err := m.getRealm(ctx, inv.Globals)
	if err != nil {
		return err
	}
	r.prepare()
	_, err = m.runIn(ctx, r.rt, rec, inv, false)
	m.putRealm(r, err == nil)
	if err == nil || !worthRetrying(err) {
		return err
	}
	inv.Discard()
	if _, err = m.run(ctx, inv, false); err == nil {
		m.rescued.Add(1)
	}
	return err
}

// worthRetrying reports whether a call that failed with err in a realm
// might succeed on a fresh runtime: not when it hit a limit, which binds
// the same way there (and a second attempt would double the time a
// runaway call takes), nor when the caller gave up.
func worthRetrying(err error) bool {
	var re *RunError
	if errors.As(err, &re) {
		return re.Kind != ErrTimeout && re.Kind != ErrMemory && re.Kind != ErrStackOverflow
	}
	return true
}

// Evaluate runs module path's top-level code on a fresh runtime (after
// setup, as in Run) and returns the names of its exports whose values are
// functions, sorted. It is the load-time check that an endpoint's function
// exists and is callable.
func (m *Modules) Evaluate(ctx context.Context, path string, setup func(rt *sobek.Runtime) error) ([]string, error) {
	return m.run(ctx, Invocation{Module: path, Setup: setup}, true)
}

// record returns the module inv names, or why it cannot be run.
func (m *Modules) record(ctx context.Context, inv Invocation) (*sobek.SourceTextModuleRecord, error) {
	p := m.p
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return nil, &RunError{Kind: ErrTimeout, Program: p.name, Fn: inv.Func, Message: err.Error()}
		}
	}
	mp, err := cleanModulePath(inv.Module)
	if err != nil {
		return nil, err
	}
	rec := p.byPath[mp]
	if rec == nil {
		return nil, &RunError{Kind: ErrNoExport, Program: p.name, Fn: inv.Func, Message: fmt.Sprintf("no module %q in the bundle", mp)}
	}
	return rec, nil
}

// run makes the call on a fresh runtime.
func (m *Modules) run(ctx context.Context, inv Invocation, evalOnly bool) ([]string, error) {
	rec, err := m.record(ctx, inv)
	if err != nil {
		return nil, err
	}
	rt, err := m.p.newSandboxRuntime()
	if err != nil {
		return nil, err
	}
	return m.runIn(ctx, rt, rec, inv, evalOnly)
}

// runIn makes the call on rt.
func (m *Modules) runIn(ctx context.Context, rt *sobek.Runtime, rec *sobek.SourceTextModuleRecord, inv Invocation, evalOnly bool) (fns []string, err error) {
	p := m.p
	if ctx == nil {
		ctx = context.Background()
	}
	mp := p.pathOf[rec]
	if inv.Setup != nil {
		if err := inv.Setup(rt); err != nil {
			return nil, err
		}
	}

	var fired error
	w := &watch{}
	p.startWatch(w, ctx, rt)
	func() {
		defer func() { fired = wd.stop(w) }()
		defer func() {
			if x := recover(); x != nil {
				if e, ok := x.(error); ok && isJSFailure(e) {
					err = p.runError(rt, inv.Func, e)
					return
				}
				err = &RunError{Kind: ErrPanic, Program: p.name, Fn: inv.Func, Message: fmt.Sprint(x)}
			}
		}()
		promise := rt.CyclicModuleRecordEvaluate(rec, p.resolve)
		switch promise.State() {
		case sobek.PromiseStateFulfilled:
		case sobek.PromiseStateRejected:
			err = p.runError(rt, "", promise.Result())
			return
		default:
			err = &RunError{Kind: ErrThrown, Program: p.name,
				Message: "module evaluation did not complete (top-level await on a promise that never settles)"}
			return
		}
		ns := rt.NamespaceObjectFor(rec)
		if evalOnly {
			var names []string
			ex := rt.Try(func() {
				for _, k := range ns.Keys() {
					if _, ok := sobek.AssertFunction(ns.Get(k)); ok {
						names = append(names, k)
					}
				}
			})
			if ex != nil {
				err = p.runError(rt, "", ex)
				return
			}
			sort.Strings(names)
			fns = names
			return
		}
		f, ok := sobek.AssertFunction(ns.Get(inv.Func))
		if !ok {
			err = &RunError{Kind: ErrNoExport, Program: p.name, Fn: inv.Func,
				Message: fmt.Sprintf("module %q has no exported function of that name", mp)}
			return
		}
		var args []sobek.Value
		if inv.Args != nil {
			if args, err = inv.Args(rt); err != nil {
				if isJSFailure(err) {
					err = p.runError(rt, inv.Func, err)
				}
				return
			}
		}
		v, jsErr := f(sobek.Undefined(), args...)
		if jsErr != nil {
			err = p.runError(rt, inv.Func, jsErr)
			return
		}
		if inv.Result != nil {
			if err = inv.Result(rt, v); err != nil && isJSFailure(err) {
				err = p.runError(rt, inv.Func, err)
			}
		}
	}()
	if fired != nil {
		return nil, &RunError{Kind: baseKind(fired), Program: p.name, Fn: inv.Func, Message: limitMessage(fired, p.limits)}
	}
	return fns, err
}

// isJSFailure reports whether err is something sobek raised for JS code: an
// exception, an interruption or a stack overflow.
func isJSFailure(err error) bool {
	var (
		intr *sobek.InterruptedError
		so   *sobek.StackOverflowError
		ex   *sobek.Exception
	)
	return errors.As(err, &ex) || errors.As(err, &intr) || errors.As(err, &so)
}
