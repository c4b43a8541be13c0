package policy

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/grafana/sobek"
)

// instance is one initialised runtime: sandboxed globals installed and the
// bundle's modules evaluated. It is used by one call at a time.
type instance struct {
	rt    *sobek.Runtime
	ns    *sobek.Object // the entry module's namespace object
	watch watch         // supervises the instance's current call
}

// Messages of the TypeErrors the sandbox throws; tests and policy authors
// match on them.
const (
	msgNoClock    = "Date: the clock is not available in the policy sandbox"
	msgNoRandom   = "Math.random: randomness is not available in the policy sandbox"
	msgNoCompile  = "code generation from strings is disabled in the policy sandbox"
	msgAllocLimit = "allocation larger than the policy sandbox memory limit"
)

// lockdownSource runs once per runtime, before any module. It is a plain
// script, compiled once per process. It receives the largest allocation in
// bytes a single built-in call may make.
//
//   - eval is deleted; Function, and the constructors of generator, async
//     functions (sobek has no async generators; reachable through .constructor of any
//     such function), are replaced by functions that throw, so no code can be
//     compiled from a string at run time.
//   - Array.prototype.fill is reimplemented in JS: sobek's native loop can
//     neither be interrupted nor watched, and on a sparse array of a billion
//     elements it would run for minutes and exhaust memory.
//   - String.prototype.repeat/padStart/padEnd, ArrayBuffer and the typed
//     array constructors refuse results larger than the memory limit before
//     allocating them in one native step.
const lockdownSource = `(function (maxBytes) {
"use strict";
const apply = Reflect.apply, defineProperty = Object.defineProperty,
	getPrototypeOf = Object.getPrototypeOf, ownKeys = Reflect.ownKeys;
delete globalThis.eval;

function noCompile(name) {
	const f = function () { throw new TypeError(name + ": ` + msgNoCompile + `"); };
	defineProperty(f, "name", { value: name });
	return f;
}
function replaceConstructor(proto, name) {
	const f = noCompile(name);
	defineProperty(f, "prototype", { value: proto, writable: false });
	defineProperty(proto, "constructor", { value: f, writable: false, configurable: false });
	return f;
}
defineProperty(globalThis, "Function", { value: replaceConstructor(Function.prototype, "Function"), writable: false, configurable: false });
replaceConstructor(getPrototypeOf(function* () {}), "GeneratorFunction");
replaceConstructor(getPrototypeOf(async function () {}), "AsyncFunction");

function tooBig(what, n) { throw new RangeError(what + ": " + n + " bytes: ` + msgAllocLimit + `"); }
function toLength(v) { v = Math.trunc(Number(v)); return v > 0 ? Math.min(v, Number.MAX_SAFE_INTEGER) : 0; }
function relIndex(v, len) {
	v = Math.trunc(Number(v));
	if (v !== v) { v = 0; }
	return v < 0 ? Math.max(len + v, 0) : Math.min(v, len);
}
defineProperty(Array.prototype, "fill", { writable: true, configurable: true, value: function fill(value, start, end) {
	const o = Object(this), len = toLength(o.length);
	let k = relIndex(start, len);
	const fin = end === undefined ? len : relIndex(end, len);
	for (; k < fin; k++) { o[k] = value; }
	return o;
}});
for (const name of ["repeat", "padStart", "padEnd"]) {
	const orig = String.prototype[name];
	defineProperty(String.prototype, name, { writable: true, configurable: true, value: { [name](n, fill) {
		const s = String(this);
		let out = Math.trunc(Number(n));
		if (name === "repeat") { out = s.length * out; }
		if (out * 2 > maxBytes) { tooBig("String.prototype." + name, out * 2); }
		return apply(orig, s, arguments);
	}}[name] });
}
// The guarded constructor shares the original's prototype object, so
// instanceof holds for buffers and arrays sobek creates natively, and
// inherits the original's statics. (A Proxy would be simpler, but sobek's
// instanceof rejects a Proxy on its right-hand side.)
function guardConstructor(holder, name, bytesFor) {
	const orig = holder[name];
	const guarded = { [name]: function (a) {
		if (new.target === undefined) { throw new TypeError("Constructor " + name + " requires 'new'"); }
		const n = bytesFor(a, orig);
		if (n > maxBytes) { tooBig(name, n); }
		return Reflect.construct(orig, arguments, new.target === guarded ? orig : new.target);
	}}[name];
	Object.setPrototypeOf(guarded, getPrototypeOf(orig));
	for (const k of ownKeys(orig)) {
		if (k !== "prototype" && k !== "length" && k !== "name") {
			defineProperty(guarded, k, Object.getOwnPropertyDescriptor(orig, k));
		}
	}
	defineProperty(guarded, "length", { value: orig.length });
	defineProperty(guarded, "prototype", { value: orig.prototype, writable: false });
	defineProperty(orig.prototype, "constructor", { value: guarded, writable: false, configurable: false });
	defineProperty(holder, name, { value: guarded, writable: false, configurable: false });
}
guardConstructor(globalThis, "ArrayBuffer", function (n) { return toLength(n); });
for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
		"Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"]) {
	if (typeof globalThis[name] !== "function") { continue; }
	guardConstructor(globalThis, name, function (a, target) {
		if (typeof a !== "object" || a === null) { return toLength(a) * target.BYTES_PER_ELEMENT; }
		if (a instanceof ArrayBuffer) { return 0; }
		return toLength(a.length) * target.BYTES_PER_ELEMENT;
	});
}
})`

var lockdown = sobek.MustCompile("policy-lockdown.js", lockdownSource, true)

// newInstance builds a sandboxed runtime and evaluates the bundle in it,
// under the program's limits. Module top-level code therefore runs once per
// runtime, not once per call.
func (p *Program) newInstance(ctx context.Context) (inst *instance, err error) {
	rt := sobek.New()
	rt.SetMaxCallStackSize(p.limits.MaxCallStack)
	// The time and random sources are called by Date (now, new Date(),
	// Date()) and Math.random only; panicking with a JS error object makes
	// those calls throw a catchable TypeError.
	rt.SetTimeSource(func() time.Time { panic(rt.NewTypeError(msgNoClock)) })
	rt.SetRandSource(func() float64 { panic(rt.NewTypeError(msgNoRandom)) })

	f, err := rt.RunProgram(lockdown)
	if err != nil {
		return nil, fmt.Errorf("policy: sandbox lockdown failed: %w", err)
	}
	fn, _ := sobek.AssertFunction(f)
	if _, err := fn(sobek.Undefined(), rt.ToValue(p.limits.MaxMemoryBytes)); err != nil {
		return nil, fmt.Errorf("policy: sandbox lockdown failed: %w", err)
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

// poolSize is how many runtimes a Program has at most; callers beyond it
// wait for one (bounded by their context), and building runtimes — which
// costs far more than a call — happens at most poolSize times per Program.
// With only 2×GOMAXPROCS, a goroutine preempted while holding a runtime
// made hundreds of concurrent registrations queue behind it (+30 ms p50 at
// 5k/s); 8×GOMAXPROCS keeps that queue short at a few MiB of memory.
func poolSize() int { return 8 * runtime.GOMAXPROCS(0) }

// get returns an idle runtime, builds one if fewer than poolSize exist, or
// waits for one to come back.
func (p *Program) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-p.pool:
		return inst, nil
	default:
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case inst := <-p.pool:
		return inst, nil
	case p.slots <- struct{}{}:
		inst, err := p.newInstance(ctx)
		if err != nil {
			<-p.slots
		}
		return inst, err
	case <-done:
		return nil, &RunError{Kind: ErrTimeout, Program: p.name, Message: "no runtime became free in time: " + ctx.Err().Error()}
	}
}

// put returns a runtime to the pool after a call that ended normally or by a
// JS exception.
func (p *Program) put(inst *instance) {
	inst.rt.ClearInterrupt()
	p.pool <- inst // never blocks: a slot was taken for every runtime
}

// discard drops a runtime whose call was interrupted, overflowed or
// panicked (its state is whatever the interruption left) and frees its
// slot for a fresh one.
func (p *Program) discard(*instance) { <-p.slots }
