package policy

import (
	"fmt"
	"math"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/grafana/sobek"
	"github.com/grafana/sobek/ast"
)

// newSandboxRuntime builds a runtime with the sandbox's lockdown applied
// and nothing evaluated.
func (p *Program) newSandboxRuntime() (*sobek.Runtime, error) {
	rt := sobek.New()
	rt.SetMaxCallStackSize(p.limits.MaxCallStack)
	// The time and random sources are called by Date (now, new Date(),
	// Date()) and Math.random only; panicking with a JS error object makes
	// those calls throw a catchable TypeError.
	rt.SetTimeSource(func() time.Time { panic(rt.NewTypeError(msgNoClock)) })
	rt.SetRandSource(func() float64 { panic(rt.NewTypeError(msgNoRandom)) })
	if err := lockdown(rt, p.limits, p.generators); err != nil {
		return nil, fmt.Errorf("policy: sandbox lockdown failed: %w", err)
	}
	return rt, nil
}

// lockdown runs once per runtime, before any module or host code. It is Go
// acting directly on the runtime's objects, plus one small script compiled
// once per process: running the former all-JS lockdown cost more than the
// rest of a JS app request.
//
//   - eval is deleted; Function, and the constructors of generator and
//     async functions (sobek has no async generators; reachable through
//     .constructor of any such function), are replaced by functions that
//     throw, so no code can be compiled from a string at run time.
//   - Array.prototype.fill is reimplemented in JS: sobek's native loop can
//     neither be interrupted nor watched, and on a sparse array of a billion
//     elements it would run for minutes and exhaust memory.
//   - String.prototype.repeat/padStart/padEnd, ArrayBuffer and the typed
//     array constructors refuse results larger than the memory limit before
//     allocating them in one native step.
//
// The GeneratorFunction constructor is replaced only if the bundle has a
// generator function (generators): see usesGenerators.
//
// The guarded constructors share the originals' prototype objects (whose
// constructor property now names the guard), so instanceof holds for
// buffers and arrays sobek creates natively, and inherit from the same
// parent (%TypedArray% for typed arrays), so their statics are the
// originals'. The originals are held only by Go closures: no JS value
// leads to them. (A Proxy would be simpler, but sobek's instanceof rejects
// a Proxy on its right-hand side.)
func lockdown(rt *sobek.Runtime, limits Limits, generators bool) (err error) {
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("%v", x)
		}
	}()
	g := rt.GlobalObject()
	must(g.Delete("eval"))

	v, err := rt.RunProgram(lockdownJS)
	if err != nil {
		return err
	}
	js := v.(*sobek.Object)
	fill := js.Get("0")
	wrapGuard, _ := sobek.AssertFunction(js.Get("2"))
	asyncProto := js.Get("1").(*sobek.Object).Prototype()

	fnProto := g.Get("Function").(*sobek.Object).Get("prototype").(*sobek.Object)
	must(g.DefineDataProperty("Function", noCompileConstructor(rt, fnProto, "Function"), sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	// Every module body runs as an async function, so sobek builds
	// %AsyncFunction.prototype% for any app anyway: always replace its
	// constructor.
	noCompileConstructor(rt, asyncProto, "AsyncFunction")
	if generators {
		gen, err := rt.RunProgram(lockdownGenJS)
		if err != nil {
			return err
		}
		noCompileConstructor(rt, gen.(*sobek.Object).Prototype(), "GeneratorFunction")
	}

	arrayProto := g.Get("Array").(*sobek.Object).Get("prototype").(*sobek.Object)
	must(arrayProto.DefineDataProperty("fill", fill, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))

	gd := &guards{rt: rt, max: float64(limits.MaxMemoryBytes), rangeError: g.Get("RangeError").(*sobek.Object), wrap: wrapGuard}
	gd.natives = boundNatives(rt, limits, g)
	strProto := g.Get("String").(*sobek.Object).Get("prototype").(*sobek.Object)
	for _, name := range [...]string{"repeat", "padStart", "padEnd"} {
		gd.guardStringMethod(strProto, name)
	}
	gd.guardConstructor(g, "ArrayBuffer", g.Get("ArrayBuffer").(*sobek.Object), 0)
	// sobek ignores a write to an accessor without a setter even in strict
	// code, where writing a read-only property throws: this setter throws
	// as that write would (all code here is module code, hence strict).
	gd.readOnly = rt.ToValue(func(sobek.FunctionCall) sobek.Value {
		panic(rt.NewTypeError("Cannot assign to read only property of the global object"))
	})
	for _, ta := range typedArrays {
		gd.guardLazily(g, ta.name, ta.size)
	}
	return nil
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// typedArrays are the typed array constructors and their element sizes.
var typedArrays = [...]struct {
	name string
	size float64
}{
	{"Int8Array", 1}, {"Uint8Array", 1}, {"Uint8ClampedArray", 1}, {"Int16Array", 2}, {"Uint16Array", 2},
	{"Int32Array", 4}, {"Uint32Array", 4}, {"Float32Array", 4}, {"Float64Array", 8},
	{"BigInt64Array", 8}, {"BigUint64Array", 8},
}

// lockdownJS returns what is simpler or only possible in JS: the
// interruptible Array.prototype.fill, an async function (whose prototype
// is reachable only through such functions) and the
// new.target shim of the constructor guards. fill uses no
// global an app could replace, and touches none of sobek's lazily built
// ones (Math, Number) so as not to build them.
var lockdownJS = sobek.MustCompile("policy-lockdown.js", `(function () {
"use strict";
const toObject = Object;
function toInteger(v) { // ToIntegerOrInfinity, NaN as 0
	v = +v;
	return v !== v ? 0 : (v === Infinity || v === -Infinity ? v : v - v % 1);
}
function relIndex(v, len) {
	v = toInteger(v);
	return v < 0 ? (len + v > 0 ? len + v : 0) : (v < len ? v : len);
}
function fill(value, start, end) {
	const o = toObject(this);
	let len = toInteger(o.length);
	len = len > 0 ? (len < 9007199254740991 ? len : 9007199254740991) : 0;
	let k = relIndex(start, len);
	const fin = end === undefined ? len : relIndex(end, len);
	for (; k < fin; k++) { o[k] = value; }
	return o;
}
// guarded wraps a constructor guard (Go) in a function that tells it
// new.target: Go-made constructors cannot tell new X() from X().
function guarded(guard) { return function (a, b, c) { return guard(new.target, a, b, c); }; }
return [fill, async function () {}, guarded];
})()`, true)

// lockdownGenJS returns a generator function, whose prototype is
// %GeneratorFunction.prototype%, for bundles that have generators. Building
// that prototype (and %GeneratorPrototype%) is most of what a generator
// costs sobek, hence a separate program run only when needed.
var lockdownGenJS = sobek.MustCompile("policy-lockdown-gen.js", `(function* () {})`, true)

// usesGenerators reports whether a module's syntax tree has a generator
// function or method (function*, *m() {} in a class or object literal).
// The GeneratorFunction constructor compiles code from strings, so
// lockdown must replace it whenever JS can reach it; JS can reach it only
// from a generator function object (through its prototype, or
// %GeneratorPrototype%.constructor, reached the same way), and sobek makes
// one only when compiled code evaluates such a function literal: no
// built-in is or returns a generator function, and eval and Function,
// the only ways to compile code at run time, are gone before any module
// code runs. A bundle with none, the common case, is spared building
// %GeneratorFunction% and its prototypes on every runtime. The walk
// covers every field of every node of the ast package (by reflection, so
// node types sobek adds later are covered too).
func usesGenerators(n any) bool {
	return walkAST(reflect.ValueOf(n), map[uintptr]bool{})
}

var astPkg = reflect.TypeFor[ast.Program]().PkgPath()

func walkAST(v reflect.Value, seen map[uintptr]bool) bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !v.CanInterface() || v.Type().Elem().PkgPath() != astPkg || seen[v.Pointer()] {
			return false
		}
		seen[v.Pointer()] = true
		if f, ok := v.Interface().(*ast.FunctionLiteral); ok && f.Generator {
			return true
		}
		return walkAST(v.Elem(), seen)
	case reflect.Interface:
		return !v.IsNil() && walkAST(v.Elem(), seen)
	case reflect.Slice:
		for i := range v.Len() {
			if walkAST(v.Index(i), seen) {
				return true
			}
		}
	case reflect.Struct:
		if v.Type().PkgPath() != astPkg || !v.CanInterface() {
			return false
		}
		if f, ok := v.Interface().(ast.FunctionLiteral); ok && f.Generator {
			return true
		}
		for i := range v.NumField() {
			if walkAST(v.Field(i), seen) {
				return true
			}
		}
	}
	return false
}

// noCompileConstructor makes a function that throws msgNoCompile however it
// is called, installs it as proto.constructor and returns it.
func noCompileConstructor(rt *sobek.Runtime, proto *sobek.Object, name string) *sobek.Object {
	msg := name + ": " + msgNoCompile
	f := rt.ToValue(func(sobek.ConstructorCall) *sobek.Object { panic(rt.NewTypeError(msg)) }).(*sobek.Object)
	setNameLength(rt, f, name, 1)
	must(f.DefineDataProperty("prototype", proto, sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	must(proto.DefineDataProperty("constructor", f, sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	return f
}

func setNameLength(rt *sobek.Runtime, f *sobek.Object, name string, length int) {
	must(f.DefineDataProperty("name", rt.ToValue(name), sobek.FLAG_FALSE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	must(f.DefineDataProperty("length", rt.ToValue(length), sobek.FLAG_FALSE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
}

// guards installs the memory guards of one runtime.
type guards struct {
	rt         *sobek.Runtime
	max        float64        // bytes one native step may allocate
	rangeError *sobek.Object  // captured before any app code runs
	wrap       sobek.Callable // lockdownJS's guarded
	readOnly   sobek.Value    // setter of the lazily guarded globals
	natives    *natives       // bounds %TypedArray%.prototype once reachable
}

// tooBig throws the RangeError of an allocation of n bytes refused.
func (g *guards) tooBig(what string, n float64) {
	msg := what + ": " + g.rt.ToValue(n).String() + " bytes: " + msgAllocLimit
	o, err := g.rt.New(g.rangeError, g.rt.ToValue(msg))
	if err != nil {
		panic(err)
	}
	panic(o)
}

// toLength is ECMAScript's ToLength.
func toLength(v sobek.Value) float64 {
	f := math.Trunc(v.ToFloat())
	if f > 0 { // false for NaN
		return min(f, 1<<53-1)
	}
	return 0
}

// jsLength is the length of a JS string in UTF-16 code units.
func jsLength(v sobek.Value) int {
	if s, ok := v.(sobek.String); ok {
		return s.Length()
	}
	n := 0
	for _, r := range v.String() {
		n += utf8.RuneLen(r)/4 + 1 // 2 units above the BMP (4 UTF-8 bytes), else 1
	}
	return n
}

// guardStringMethod wraps String.prototype[name] (repeat, padStart or
// padEnd) so that a result of more than max bytes (2 per code unit) is
// refused before the native method builds it. Like the original it
// converts this to a string first, once, and calls the original on it.
func (g *guards) guardStringMethod(strProto *sobek.Object, name string) {
	origV := strProto.Get(name)
	orig, _ := sobek.AssertFunction(origV)
	repeat, what := name == "repeat", "String.prototype."+name
	f := g.rt.ToValue(func(fc sobek.FunctionCall) sobek.Value {
		s := fc.This.ToString()
		out := math.Trunc(fc.Argument(0).ToFloat())
		if repeat {
			out *= float64(jsLength(s))
		}
		if out*2 > g.max { // false for NaN
			g.tooBig(what, out*2)
		}
		v, err := orig(s, fc.Arguments...)
		if err != nil {
			panic(err)
		}
		return v
	}).(*sobek.Object)
	setNameLength(g.rt, f, name, int(origV.(*sobek.Object).Get("length").ToInteger()))
	must(strProto.DefineDataProperty(name, f, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
}

var arrayBufferType = reflect.TypeFor[sobek.ArrayBuffer]()

// guardConstructor replaces holder[name], ArrayBuffer (elemSize 0) or a
// typed array constructor, by one that refuses to allocate more than max
// bytes and otherwise constructs with the original, new.target preserved
// (so subclasses work). The size is computed as the original will: for
// ArrayBuffer ToLength(arg); for a typed array, nothing for an ArrayBuffer
// argument (a view), elemSize × ToLength(arg.length) for any other object
// (array-like, iterable, typed array, function), elemSize × ToLength(arg)
// otherwise.
func (g *guards) guardConstructor(holder *sobek.Object, name string, orig *sobek.Object, elemSize float64) *sobek.Object {
	rt := g.rt
	construct, _ := sobek.AssertConstructor(orig)
	proto := orig.Get("prototype").(*sobek.Object)
	notNew := "Constructor " + name + " requires 'new'"
	var guarded *sobek.Object
	guard := func(fc sobek.FunctionCall) sobek.Value {
		nt, isNew := fc.Argument(0).(*sobek.Object)
		if !isNew {
			panic(rt.NewTypeError(notNew))
		}
		a := fc.Argument(1)
		var n float64
		if elemSize == 0 {
			n = toLength(a)
		} else if o, ok := a.(*sobek.Object); ok {
			// The real type, not instanceof, which JS can fool.
			if o.ExportType() != arrayBufferType {
				n = toLength(o.Get("length")) * elemSize
			}
		} else {
			n = toLength(a) * elemSize
		}
		if n > g.max {
			g.tooBig(name, n)
		}
		if nt == guarded {
			nt = orig
		}
		o, err := construct(nt, fc.Arguments[1:]...)
		if err != nil {
			panic(err)
		}
		return o
	}
	w, err := g.wrap(sobek.Undefined(), rt.ToValue(guard))
	must(err)
	guarded = w.(*sobek.Object)
	length := 3
	if elemSize == 0 {
		length = 1
	}
	setNameLength(rt, guarded, name, length)
	must(guarded.DefineDataProperty("prototype", proto, sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	must(guarded.SetPrototype(orig.Prototype()))
	if elemSize == 0 {
		must(guarded.DefineDataProperty("isView", orig.Get("isView"), sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
		species := rt.ToValue(func(fc sobek.FunctionCall) sobek.Value { return fc.This }).(*sobek.Object)
		setNameLength(rt, species, "get [Symbol.species]", 0)
		must(guarded.DefineAccessorPropertySymbol(sobek.SymSpecies, species, nil, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	} else {
		must(guarded.DefineDataProperty("BYTES_PER_ELEMENT", rt.ToValue(elemSize), sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	}
	must(proto.DefineDataProperty("constructor", guarded, sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	must(holder.DefineDataProperty(name, guarded, sobek.FLAG_FALSE, sobek.FLAG_FALSE, sobek.FLAG_FALSE))
	return guarded
}

// guardLazily defers guardConstructor for a typed array constructor to the
// first read of holder[name]: most apps never use typed arrays, and
// guarding all eleven costs more than the rest of the lockdown. Until
// then holder[name] is a configurable accessor whose getter installs the
// guard (a non-writable, non-configurable data property, as when eager)
// and returns it. The original constructor is unreachable from JS in the
// meantime too: typed arrays, their prototypes and %TypedArray% can only
// be reached from one of these constructors, as sobek creates no typed
// array natively, and %TypedArray% has no link down to them.
func (g *guards) guardLazily(holder *sobek.Object, name string, elemSize float64) {
	orig := holder.Get(name).(*sobek.Object)
	var guarded *sobek.Object
	get := g.rt.ToValue(func(sobek.FunctionCall) sobek.Value {
		if guarded == nil { // the getter may be saved and called again
			guarded = g.guardConstructor(holder, name, orig, elemSize)
			g.natives.boundTyped(orig.Prototype().Get("prototype").(*sobek.Object))
		}
		return guarded
	})
	must(holder.DefineAccessorProperty(name, get, g.readOnly, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
}
