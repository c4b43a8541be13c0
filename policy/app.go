package policy

import (
	"context"
	"errors"
	"fmt"
	"sort"

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
}

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
	return &Modules{p: p}, nil
}

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
}

// Run builds a fresh sandboxed runtime, runs inv.Setup, evaluates
// inv.Module (and what it imports), calls inv.Func and hands its result to
// inv.Result. Module evaluation, the call and Result all run under one
// watchdog, so the limits bound them together.
//
// Errors: a *RunError (ErrThrown, ErrTimeout, ErrMemory, ErrStackOverflow,
// ErrNoExport, ErrPanic) for what the JS code did; an error returned by
// Setup, Args or Result that is not a JS exception or interruption is
// returned as it is. The runtime is dropped afterwards in every case.
//
// A host function that must abort the call (e.g. its storage failed) can
// call rt.Interrupt with its error: Run then returns a *RunError of kind
// ErrTimeout whose message is that error; the host should keep its own
// record of the failure and prefer it.
func (m *Modules) Run(ctx context.Context, inv Invocation) error {
	_, err := m.run(ctx, inv, false)
	return err
}

// Evaluate runs module path's top-level code on a fresh runtime (after
// setup, as in Run) and returns the names of its exports whose values are
// functions, sorted. It is the load-time check that an endpoint's function
// exists and is callable.
func (m *Modules) Evaluate(ctx context.Context, path string, setup func(rt *sobek.Runtime) error) ([]string, error) {
	return m.run(ctx, Invocation{Module: path, Setup: setup}, true)
}

func (m *Modules) run(ctx context.Context, inv Invocation, evalOnly bool) (fns []string, err error) {
	p := m.p
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, &RunError{Kind: ErrTimeout, Program: p.name, Fn: inv.Func, Message: err.Error()}
	}
	mp, err := cleanModulePath(inv.Module)
	if err != nil {
		return nil, err
	}
	rec := p.byPath[mp]
	if rec == nil {
		return nil, &RunError{Kind: ErrNoExport, Program: p.name, Fn: inv.Func, Message: fmt.Sprintf("no module %q in the bundle", mp)}
	}
	rt, err := p.newSandboxRuntime()
	if err != nil {
		return nil, err
	}
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
