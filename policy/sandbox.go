package policy

import (
	"context"
	"fmt"

	"github.com/grafana/sobek"
)

// instance is one initialised runtime: sandboxed globals installed and the
// bundle's modules evaluated. It is used by one call at a time.
type instance struct {
	rt *sobek.Runtime
	ns *sobek.Object // the entry module's namespace object
	// fns caches the exported functions looked up in ns: a namespace
	// lookup resolves the export each time and allocates.
	fns   map[string]sobek.Callable
	watch watch // supervises the instance's current call
}

// Messages of the TypeErrors the sandbox throws; tests and policy authors
// match on them.
const (
	msgNoClock    = "Date: the clock is not available in the policy sandbox"
	msgNoRandom   = "Math.random: randomness is not available in the policy sandbox"
	msgNoCompile  = "code generation from strings is disabled in the policy sandbox"
	msgAllocLimit = "allocation larger than the policy sandbox memory limit"
)

// newInstance builds a sandboxed runtime and evaluates the bundle in it,
// under the program's limits. Module top-level code therefore runs once per
// runtime, not once per call.
func (p *Program) newInstance(ctx context.Context) (inst *instance, err error) {
	rt, err := p.newSandboxRuntime()
	if err != nil {
		return nil, err
	}

	w := new(watch)
	p.startWatch(w, ctx, rt)
	var runErr error
	func() {
		defer func() {
			if x := recover(); x != nil {
				runErr = &RunError{Kind: ErrPanic, Program: p.name, Message: fmt.Sprint(x)}
			}
		}()
		promise := rt.CyclicModuleRecordEvaluate(p.entry, p.resolve)
		switch promise.State() {
		case sobek.PromiseStateFulfilled:
			inst = &instance{rt: rt, ns: rt.NamespaceObjectFor(p.entry)}
		case sobek.PromiseStateRejected:
			runErr = p.runError(rt, "", promise.Result())
		default:
			runErr = &RunError{Kind: ErrThrown, Program: p.name,
				Message: "module evaluation did not complete (top-level await on a promise that never settles)"}
		}
	}()
	if fired := wd.stop(w); fired != nil && runErr == nil {
		runErr = &RunError{Kind: baseKind(fired), Program: p.name, Message: limitMessage(fired, p.limits)}
	}
	if runErr != nil {
		return nil, runErr
	}
	return inst, nil
}

// get returns an idle runtime, builds one if fewer than poolSize exist, or
// waits for one to come back.
func (p *Program) get(ctx context.Context) (*instance, error) {
	return p.pool.get(ctx, func(*instance) bool { return true },
		func() (*instance, error) { return p.newInstance(ctx) },
		func(err error) error {
			return &RunError{Kind: ErrTimeout, Program: p.name, Message: "no runtime became free in time: " + err.Error()}
		})
}

// put returns a runtime to the pool after a call that ended normally or by a
// JS exception.
func (p *Program) put(inst *instance) {
	inst.rt.ClearInterrupt()
	p.pool.put(inst)
}

// discard drops a runtime whose call was interrupted, overflowed or
// panicked (its state is whatever the interruption left) and frees its
// slot for a fresh one.
func (p *Program) discard(*instance) { p.pool.drop() }
