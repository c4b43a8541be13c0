package policy

import (
	"context"
	"fmt"
	"strings"

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
//     %ThrowTypeError%), is frozen before any app code runs.
//   - Properties apps commonly assign on their own objects and instances
//     (constructor, name, message, toString, valueOf, toLocaleString) are
//     accessors on the frozen prototypes, whose setter defines the
//     property on the object assigned to, as SES does: without that,
//     `this.name = "MyError"` in an Error subclass would throw, since
//     assignment refuses to shadow a read-only inherited property.
//   - Module instances are forgotten before each call (forgetModules), so
//     every module's top-level code runs again and its state is new.
//   - The global object is not extensible, and its properties are
//     read-only but for the host's globals (Invocation.Globals), which
//     each call's Setup assigns anew.
//   - A call that ends in anything but success retires the realm.
//
// What an app can still observe is the freezing itself: a write to a
// built-in, or a new global, throws a TypeError, and
// Object.isFrozen(Array.prototype) is true. Modules.Run therefore re-runs
// a call that failed in a realm on a fresh runtime, where built-ins are as
// CCF's are; see there.
type realm struct {
	rt *sobek.Runtime
	// hostGlobals are the globals Setup may assign (Invocation.Globals),
	// joined: the only writable properties of the global object.
	hostGlobals string
	calls       int
}

// realmMaxCalls retires a realm after this many calls, bounding what
// sobek keeps per runtime and no call can remove (the Symbol.for
// registry).
const realmMaxCalls = 10000

// newRealm builds a hardened runtime for m's modules, whose global object
// has writable properties hostGlobals and can have no others.
func (m *Modules) newRealm(hostGlobals []string) (*realm, error) {
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
	if _, err := harden(sobek.Undefined(), rt.ToValue(extras), rt.ToValue(hostGlobals)); err != nil {
		return nil, fmt.Errorf("policy: realm: hardening failed: %w", err)
	}
	return &realm{rt: rt, hostGlobals: strings.Join(hostGlobals, "\x00")}, nil
}

// prepare readies r for a call: the interrupt of the last one cleared and
// every module instance forgotten.
func (r *realm) prepare() {
	r.rt.ClearInterrupt()
	forgetModules(r.rt)
	r.calls++
}

// reusable reports whether r can serve another call after one that
// succeeded.
func (r *realm) reusable() bool { return r.calls < realmMaxCalls }

// getRealm returns an idle realm for hostGlobals, builds one if fewer
// than poolSize exist, or waits for one to come back (bounded by ctx).
func (m *Modules) getRealm(ctx context.Context, hostGlobals []string) (*realm, error) {
	key := strings.Join(hostGlobals, "\x00")
	return m.realms.get(ctx, func(r *realm) bool { return r.hostGlobals == key },
		func() (*realm, error) { return m.newRealm(hostGlobals) },
		func(err error) error {
			return &RunError{Kind: ErrTimeout, Program: m.p.name, Message: "no interpreter became free in time: " + err.Error()}
		})
}

// putRealm takes back a realm after a call: into the pool if the call
// left it reusable, else it is dropped.
func (m *Modules) putRealm(r *realm, ok bool) {
	if ok && r.reusable() {
		m.realms.put(r)
		return
	}
	m.realms.drop()
}

// hardenJS returns the function that hardens a realm (see realm). It runs
// before any app code, so the built-ins it calls are the originals.
var hardenJS = sobek.MustCompile("policy-harden.js", `(function () {
"use strict";
const g = globalThis;
const ownKeys = Reflect.ownKeys, getDesc = Reflect.getOwnPropertyDescriptor;
const define = Reflect.defineProperty, getProto = Reflect.getPrototypeOf;
const preventExtensions = Reflect.preventExtensions;
const freeze = Object.freeze, TypeErr = TypeError, str = String;
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

return function (extras, hostGlobals) {
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
	// The global object keeps its properties and gets no others: the
	// host's globals writable (assigned by each call's Setup), the rest
	// read-only.
	const host = new Set(hostGlobals);
	for (const k of ownKeys(g)) {
		if (host.has(k)) continue;
		const d = getDesc(g, k);
		define(g, k, "value" in d ? { writable: false, configurable: false } : { configurable: false });
	}
	for (const k of hostGlobals) {
		define(g, k, { value: undefined, writable: true, enumerable: true, configurable: false });
	}
	preventExtensions(g);
};
})()`, true)
