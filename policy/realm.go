package policy

import (
	"context"
	"fmt"

	"github.com/grafana/sobek"
)

// A realm is a sandboxed runtime that Modules keeps between calls. A fresh
// sobek runtime builds every built-in it is asked for (Array, JSON,
// DataView, their prototypes and methods) on first use, and the lockdown
// replaces a dozen of them: for a small handler that is most of the call's
// cost. A realm pays for that once, and keeps CCF's fresh-interpreter
// semantics — nothing one call does reaches the next — by making what
// survives a call immutable and undoing the rest:
//
//   - Every built-in reachable from the global object, and the hidden ones
//     (iterator prototypes, %TypedArray%, %AsyncFunction.prototype%,
//     %ThrowTypeError%), is frozen before any app code runs, and so are the
//     global object's own properties (the global itself stays extensible).
//   - Properties apps commonly assign on their own objects and instances
//     (constructor, name, message, toString, valueOf, toLocaleString) are
//     accessors on the frozen prototypes, whose setter defines the
//     property on the object assigned to, as SES does: without that,
//     `this.name = "MyError"` in an Error subclass would throw, since
//     assignment refuses to shadow a read-only inherited property.
//   - Module instances are forgotten before each call (forgetModules), so
//     every module's top-level code runs again and its state is new.
//   - After a call, every global the call added is deleted. A call that
//     made that impossible (a non-configurable global, a non-extensible or
//     re-parented global object), or that ended in anything but success,
//     retires the realm.
//
// What an app can still observe is the freezing itself: a write to a
// built-in throws a TypeError, and Object.isFrozen(Array.prototype) is
// true. Modules.Run therefore re-runs a call that failed in a realm on a
// fresh runtime, where built-ins are as CCF's are; see there.
type realm struct {
	rt *sobek.Runtime
	// clean deletes the globals a call added and reports whether the
	// global object is as the realm was built.
	clean sobek.Callable
	// globals are the names of the global object's own properties as
	// built.
	globals map[string]bool
	calls   int
}

// realmMaxCalls retires a realm after this many calls, bounding what
// sobek keeps per runtime and no call can remove (the Symbol.for
// registry).
const realmMaxCalls = 10000

// newRealm builds a hardened runtime for m's modules.
func (m *Modules) newRealm() (*realm, error) {
	p := m.p
	rt, err := p.newSandboxRuntime()
	if err != nil {
		return nil, err
	}
	// The lazily guarded typed array constructors would be unguarded
	// (and so unfrozen) until first read; a realm builds them all now.
	g := rt.GlobalObject()
	for _, ta := range typedArrays {
		if g.Get(ta.name) == nil {
			return nil, fmt.Errorf("policy: realm: no %s", ta.name)
		}
	}
	extras := []any{}
	if p.generators {
		gen, err := rt.RunProgram(lockdownGenJS)
		if err != nil {
			return nil, err
		}
		extras = append(extras, gen)
	}
	v, err := rt.RunProgram(hardenJS)
	if err != nil {
		return nil, fmt.Errorf("policy: realm: %w", err)
	}
	harden, _ := sobek.AssertFunction(v)
	cv, err := harden(sobek.Undefined(), rt.ToValue(extras))
	if err != nil {
		return nil, fmt.Errorf("policy: realm: hardening failed: %w", err)
	}
	clean, ok := sobek.AssertFunction(cv)
	if !ok {
		return nil, fmt.Errorf("policy: realm: hardening returned %v", cv)
	}
	r := &realm{rt: rt, clean: clean, globals: make(map[string]bool)}
	for _, k := range g.GetOwnPropertyNames() {
		r.globals[k] = true
	}
	return r, nil
}

// prepare readies r for a call: the interrupt of the last one cleared and
// every module instance forgotten.
func (r *realm) prepare() {
	r.rt.ClearInterrupt()
	forgetModules(r.rt)
	r.calls++
}

// reusable cleans up after a call that succeeded and reports whether r can
// serve another.
func (r *realm) reusable() bool {
	if r.calls >= realmMaxCalls {
		return false
	}
	g := r.rt.GlobalObject()
	if names := g.GetOwnPropertyNames(); len(names) > len(r.globals) {
		for _, k := range names {
			if !r.globals[k] && g.Delete(k) != nil {
				return false
			}
		}
	}
	ok, err := r.clean(sobek.Undefined())
	return err == nil && ok.ToBoolean()
}

// getRealm returns an idle realm, builds one if fewer than poolSize
// exist, or waits for one to come back (bounded by ctx).
func (m *Modules) getRealm(ctx context.Context) (*realm, error) {
	select {
	case r := <-m.realms:
		return r, nil
	default:
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case r := <-m.realms:
		return r, nil
	case m.slots <- struct{}{}:
		r, err := m.newRealm()
		if err != nil {
			<-m.slots
		}
		return r, err
	case <-done:
		return nil, &RunError{Kind: ErrTimeout, Program: m.p.name, Message: "no interpreter became free in time: " + ctx.Err().Error()}
	}
}

// putRealm takes back a realm after a call: into the pool if the call
// left it reusable, else it is dropped and its slot freed.
func (m *Modules) putRealm(r *realm, ok bool) {
	if ok && r.reusable() {
		m.realms <- r // never blocks: a slot was taken for every realm
		return
	}
	<-m.slots
}

// hardenJS returns the function that hardens a realm (see realm). It runs
// before any app code, so the built-ins it calls are the originals. It
// returns the function that cleans up after each call.
var hardenJS = sobek.MustCompile("policy-harden.js", `(function () {
"use strict";
const g = globalThis;
const ownKeys = Reflect.ownKeys, getDesc = Reflect.getOwnPropertyDescriptor;
const define = Reflect.defineProperty, getProto = Reflect.getPrototypeOf;
const isExtensible = Reflect.isExtensible, deleteProp = Reflect.deleteProperty;
const freeze = Object.freeze, TypeErr = TypeError, str = String;
const gProto = getProto(g);
const overridable = ["constructor", "name", "message", "toString", "valueOf", "toLocaleString"];

function tame(o, key) {
	const d = getDesc(o, key);
	if (d === undefined || !("value" in d) || !d.configurable) return;
	const value = d.value;
	// Methods, unlike function expressions, have no prototype object
	// (which would need freezing too).
	const { get, set } = {
		get() { return value; },
		set(v) {
			if (this === o) throw new TypeErr("Cannot assign to read only property '" + str(key) + "' of a built-in");
			if (!define(this, key, { value: v, writable: true, enumerable: true, configurable: true })) {
				throw new TypeErr("Cannot assign to property '" + str(key) + "'");
			}
		},
	};
	freeze(get);
	freeze(set);
	define(o, key, { get: get, set: set, enumerable: d.enumerable, configurable: false });
}

return function (extras) {
	const seen = new Set([g]);
	const objects = [];
	const stack = [];
	const push = (v) => { if ((typeof v === "object" || typeof v === "function") && v !== null && !seen.has(v)) { seen.add(v); stack.push(v); } };
	const pushDesc = (d) => { if (d !== undefined) { push(d.value); push(d.get); push(d.set); } };
	for (const k of ownKeys(g)) pushDesc(getDesc(g, k));
	push(getProto(g));
	push(getProto([][Symbol.iterator]()));
	push(getProto(new Map()[Symbol.iterator]()));
	push(getProto(new Set()[Symbol.iterator]()));
	push(getProto(""[Symbol.iterator]()));
	push(getProto(/a/g[Symbol.matchAll]("a")));
	push(getProto(async function () {}));
	push((function () { return getDesc(arguments, "callee").get; })());
	for (const e of extras) push(e);
	while (stack.length > 0) {
		const o = stack.pop();
		objects.push(o);
		push(getProto(o));
		for (const k of ownKeys(o)) pushDesc(getDesc(o, k));
	}
	for (const o of objects) {
		const c = getDesc(o, "constructor");
		if (c !== undefined && "value" in c && typeof c.value === "function" && c.value.prototype === o) {
			for (const k of overridable) tame(o, k);
		}
	}
	for (const o of objects) freeze(o);
	const builtin = new Set();
	for (const k of ownKeys(g)) {
		builtin.add(k);
		const d = getDesc(g, k);
		define(g, k, "value" in d ? { writable: false, configurable: false } : { configurable: false });
	}
	const symbols = Object.getOwnPropertySymbols;
	const nSymbols = symbols(g).length;
	// clean: delete the symbol-keyed globals a call added, and check the
	// global object is as built (the string-keyed globals are cleaned in
	// Go, which costs less). The built-in ones cannot have gone, being
	// non-configurable.
	return function () {
		if (!isExtensible(g) || getProto(g) !== gProto) return false;
		const keys = symbols(g);
		for (let i = 0; keys.length > nSymbols && i < keys.length; i++) {
			if (!builtin.has(keys[i]) && !deleteProp(g, keys[i])) return false;
		}
		return true;
	};
};
})()`, true)
