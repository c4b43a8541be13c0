package policy

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/sobek"
)

// Native built-ins run to completion: sobek sees an interrupt only at the
// next JS instruction, and a built-in such as Array.prototype.includes is
// one instruction however long its loop. new Array(1e8) costs nothing to
// make (sobek keeps it sparse), yet includes on it loops 1e8 times, about
// 5 s; on a typed array or a string the loop is shorter only because the
// memory limit bounds its length.
//
// boundNatives wraps every such built-in in a Go function that looks at
// the size of the work first. Work within the bound (a quarter of the
// call's time limit at the measured worst cost per element) goes straight
// to the original, so normal calls see the same built-in, only behind one
// more Go call. Larger work is made interruptible without changing what
// the built-in computes:
//
//   - Array.prototype methods run the original on a view of the array: a
//     Proxy whose get and has traps are JS. The native loop then runs JS
//     at every element, where the interrupt is seen (and it throws past
//     catch, like any interrupt). Methods that return this return the
//     array, not the view.
//   - Typed-array methods, which refuse a Proxy, run the original on
//     chunks (subarrays) of at most the bound, or (sort) with a JS
//     comparator equal to the default order.
//   - Array and typed-array iterators (for spread, Array.from, new Set,
//     destructuring, which iterate natively) iterate over a view; string
//     iterators over long strings are JS iterators.
//   - RegExp's Symbol.split/replace/match on a string longer than the
//     pieces bound (a match costs about what a piece does) run on a clone
//     of the regexp whose exec is JS, so sobek takes its generic path and
//     calls JS per match; the original's lastIndex ends as it would. That
//     path is several times slower than sobek's own loop, and each exec
//     of it may copy the string (so costs O(length), bounded by the
//     memory limit), but it can be interrupted between matches.
//   - String.prototype.split and replaceAll with a string pattern, and
//     Function.prototype.apply, Reflect.apply and Reflect.construct, whose
//     cost is the number of pieces or arguments, throw a RangeError
//     (msgNativeBound) past the bound instead: counting is cheap, and a
//     result that large could not be finished within the limit anyway.
//
// The originals are held by Go closures and the helper program's scope
// only; no JS value leads to them.

// Measured worst costs per unit of work, on sobek's native paths (a 2-core
// VM): sparse-array loops (find, join) about 90 ns per element, split("")
// and replaceAll about 500 ns per piece, native iteration (spread) and
// Array.from on an array-like about 1.7 µs per element.
const (
	costPerElement = 100 * time.Nanosecond
	costPerPiece   = 500 * time.Nanosecond
	costPerStep    = 2 * time.Microsecond
	// nativeShare is the part of the time limit one native call may take:
	// the rest of the call, the watchdog's two ticks and the check that
	// lets it finish are what keeps a run within twice its limit.
	nativeShare = 4
)

// nativeBounds are the most units of work a native built-in may do in one
// step, by the cost class of the unit.
type nativeBounds struct {
	elems  float64 // array and typed-array elements visited
	pieces float64 // strings made by split/replaceAll, arguments spread by apply, string length for regexps
	steps  float64 // native iteration steps, array-like elements copied
}

// boundsFor is a variable so that tests can make the bounds small, to
// check the bounded paths on inputs that are quick to build.
var boundsFor = func(timeout time.Duration) nativeBounds {
	f := func(cost time.Duration, floor float64) float64 {
		return max(float64(timeout/nativeShare/cost), floor)
	}
	return nativeBounds{elems: f(costPerElement, 4096), pieces: f(costPerPiece, 1024), steps: f(costPerStep, 256)}
}

// msgNativeBound is the RangeError of a native step refused for its size.
const msgNativeBound = "more work than one native step may do in the policy sandbox"

// nativeJS returns the JS half of the bounds: the view maker and the
// chunked or JS-compared typed-array and iterator fallbacks. It runs before
// any app code, so the built-ins it captures are the originals; it reads
// no typed-array global (that would build their lazily made guards), and
// gets %TypedArray%.prototype's methods from Go when a typed array is
// first used.
var nativeJS = sobek.MustCompile("policy-native.js", `(function () {
"use strict";
const get = Reflect.get, has = Reflect.has, apply = Reflect.apply, P = Proxy, RX = RegExp;
const str = String, isArray = Array.isArray, arrayJoin = Array.prototype.join;
const push = Array.prototype.push, defineProperty = Reflect.defineProperty;
const codePointAt = String.prototype.codePointAt, strSlice = String.prototype.slice;
const rxExec = RegExp.prototype.exec, species = Symbol.species, iterSym = Symbol.iterator;
// noop is called by the views' traps now and then: the VM sees an
// interrupt when it starts running it.
function noop() {}

// Default orders as comparators (JS, so a native sort calls JS at each
// comparison). Arrays: undefined and holes never reach the comparator.
function arrayOrder(x, y) {
	const a = str(x), b = str(y);
	return a < b ? -1 : (a > b ? 1 : 0);
}
// sortLarge sorts a long array-like o as Array.prototype.sort does, in
// JS: sobek's own sort of a non-array first allocates a slot for every
// index up to length, holes included. The present elements are collected,
// sorted natively as a dense array (with a JS comparator), written back,
// and the indices after them deleted.
function sortLarge(o, cmp, nativeSort) {
	const len = o.length, items = [];
	for (let k = 0; k < len; k++) {
		if (k in o) { apply(push, items, [o[k]]); }
	}
	apply(nativeSort, items, [cmp === undefined ? arrayOrder : cmp]);
	let j = 0;
	for (; j < items.length; j++) { o[j] = items[j]; }
	for (; j < len; j++) { delete o[j]; }
	return o;
}
// Typed arrays: numeric, -0 before +0, NaN last.
function numericOrder(x, y) {
	if (x !== x) { return y !== y ? 0 : 1; }
	if (y !== y) { return -1; }
	if (x < y) { return -1; }
	if (x > y) { return 1; }
	if (x === 0 && y === 0) {
		const a = 1 / x, b = 1 / y;
		return a < b ? -1 : (a > b ? 1 : 0);
	}
	return 0;
}
function toInteger(v) { // ToIntegerOrInfinity
	v = +v;
	return v !== v ? 0 : (v === Infinity || v === -Infinity ? v : v - v % 1);
}
// typed(m, bound, joinBound) makes the chunked fallbacks of
// %TypedArray%.prototype methods m (the originals): each native call covers
// at most bound elements (joinBound for join and toLocaleString, which
// make a string per element), and the JS loop between calls is where an
// interrupt is seen.
function typed(m, bound, joinBound) {
	function chunk(ta, k, n) { return apply(m.subarray, ta, [k, k + n]); }
	function start(from, len, dflt) {
		if (from === undefined) { return dflt; }
		const n = toInteger(from);
		return n < 0 ? (len + n > 0 ? len + n : 0) : n;
	}
	return {
		includes(x, from) {
			const len = this.length;
			for (let k = start(from, len, 0); k < len; k += bound) {
				if (apply(m.includes, chunk(this, k, bound), [x])) { return true; }
			}
			return false;
		},
		indexOf(x, from) {
			const len = this.length;
			for (let k = start(from, len, 0); k < len; k += bound) {
				const i = apply(m.indexOf, chunk(this, k, bound), [x]);
				if (i >= 0) { return k + i; }
			}
			return -1;
		},
		lastIndexOf(x, from) {
			const len = this.length;
			let end = arguments.length > 1 ? toInteger(from) : len - 1;
			end = end < 0 ? len + end : (end < len - 1 ? end : len - 1);
			for (let k = end + 1; k > 0; k -= bound) {
				const lo = k > bound ? k - bound : 0;
				const i = apply(m.lastIndexOf, chunk(this, lo, k - lo), [x]);
				if (i >= 0) { return lo + i; }
			}
			return -1;
		},
		join(sep) {
			const len = this.length, s = sep === undefined ? "," : str(sep), parts = [];
			for (let k = 0; k < len; k += joinBound) { apply(push, parts, [apply(m.join, chunk(this, k, joinBound), [s])]); }
			return apply(arrayJoin, parts, [s]);
		},
		toLocaleString() {
			const len = this.length, parts = [];
			for (let k = 0; k < len; k += joinBound) { apply(push, parts, [apply(m.toLocaleString, chunk(this, k, joinBound), [])]); }
			return apply(arrayJoin, parts, [","]);
		},
		sort(cmp) { return apply(m.sort, this, [cmp === undefined ? numericOrder : cmp]); },
	};
}
// A string iterator in JS, for strings too long to iterate natively.
function stringIterator(s) {
	let i = 0;
	const it = {
		next() {
			if (i >= s.length) { return { value: undefined, done: true }; }
			const n = apply(codePointAt, s, [i]) > 0xffff ? 2 : 1;
			const v = apply(strSlice, s, [i, i + n]);
			i += n;
			return { value: v, done: false };
		},
	};
	it[iterSym] = function () { return this; };
	return it;
}
// A clone of regexp rx whose exec is JS, as are the execs of the regexps
// its species constructor makes (split makes one): sobek's fast path
// skips regexps with an own exec, and its generic path calls exec per match.
function slowRegExp(rx, source, flags) {
	const c = new RX(source, flags);
	defineProperty(c, "exec", { value: function exec(s) { return apply(rxExec, this, [s]); }, writable: true, configurable: true });
	const ctor = function (p, f) { return slowRegExp(null, p instanceof RX ? p.source : p, f); };
	ctor[species] = ctor;
	defineProperty(c, "constructor", { value: ctor, writable: true, configurable: true });
	return c;
}
return { noop: noop, has: Reflect.has, arrayOrder: arrayOrder, sortLarge: sortLarge, typed: typed, stringIterator: stringIterator, slowRegExp: slowRegExp };
})()`, true)

// natives installs the bounds of one runtime.
type natives struct {
	rt          *sobek.Runtime
	b           nativeBounds
	rangeError  *sobek.Object
	syntaxError *sobek.Object
	maxBytes    float64 // Limits.MaxMemoryBytes
	noop, has   sobek.Callable
	sortLarge   sobek.Callable
	origSort    sobek.Value // the original Array.prototype.sort
	arrayOrder  sobek.Value
	typed       sobek.Callable
	strIter     sobek.Callable
	slowRx      sobek.Callable
	rxExec      sobek.Value               // the original RegExp.prototype.exec
	arrayIters  map[string]sobek.Callable // the original Array.prototype values, keys, entries
	typedDone   bool
}

func (n *natives) call(f sobek.Callable, this sobek.Value, args ...sobek.Value) sobek.Value {
	v, err := f(this, args...)
	if err != nil {
		panic(err)
	}
	return v
}

func (n *natives) refuse(what string, units float64) {
	msg := what + ": " + n.rt.ToValue(units).String() + " items: " + msgNativeBound
	o, err := n.rt.New(n.rangeError, n.rt.ToValue(msg))
	if err != nil {
		panic(err)
	}
	panic(o)
}

func (n *natives) refuseAlloc(what string, bytes float64) {
	msg := what + ": " + n.rt.ToValue(bytes).String() + " bytes: " + msgAllocLimit
	o, err := n.rt.New(n.rangeError, n.rt.ToValue(msg))
	if err != nil {
		panic(err)
	}
	panic(o)
}

// viewOf returns a view of o: a Proxy whose traps for index properties
// (what a native loop over o reads) are Go functions that call JS every
// viewTick reads, where the VM sees an interrupt and throws it past any
// catch. Everything else is forwarded as is. A get of a missing index
// gives nil, as sobek's own objects do, so built-ins that test for
// holes that way still skip them. Getters see o as this, as they
// would without the view.
func (n *natives) viewOf(o *sobek.Object) sobek.Value {
	count := 0
	tick := func() {
		if count++; count%viewTick == 0 {
			n.call(n.noop, sobek.Undefined())
		}
	}
	return n.rt.ToValue(n.rt.NewProxy(o, &sobek.ProxyTrapConfig{
		// length and the like: a typed array's length getter
		// refuses a Proxy as this.
		Get: func(t *sobek.Object, k string, _ sobek.Value) sobek.Value { return t.Get(k) },
		GetIdx: func(t *sobek.Object, i int, _ sobek.Value) sobek.Value {
			tick()
			return t.Get(strconv.Itoa(i))
		},
		HasIdx: func(t *sobek.Object, i int) bool {
			tick()
			return n.call(n.has, sobek.Undefined(), t, n.rt.ToValue(i)).ToBoolean()
		},
	}))
}

// viewTick is how many index reads of a view go between two chances for
// an interrupt: a few microseconds of work.
const viewTick = 256

// over reports whether o's length is more than bound. Reading length may
// run a getter (an array-like's); the original reads it again.
func over(o *sobek.Object, bound float64) bool {
	l := o.Get("length")
	return l != nil && toLength(l) > bound
}

// replace sets holder[key] (a string or *sobek.Symbol) to a Go function
// with the original's name and length, made by wrap from the original.
func (n *natives) replace(holder *sobek.Object, key any, wrap func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value) *sobek.Object {
	var origV sobek.Value
	switch k := key.(type) {
	case string:
		origV = holder.Get(k)
	case *sobek.Symbol:
		origV = holder.GetSymbol(k)
	}
	orig, ok := sobek.AssertFunction(origV)
	if !ok {
		return nil // not in this sobek: nothing to bound
	}
	oo := origV.(*sobek.Object)
	f := n.rt.ToValue(wrap(orig)).(*sobek.Object)
	setNameLength(n.rt, f, oo.Get("name").String(), int(oo.Get("length").ToInteger()))
	switch k := key.(type) {
	case string:
		must(holder.DefineDataProperty(k, f, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	case *sobek.Symbol:
		must(holder.DefineDataPropertySymbol(k, f, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	}
	return f
}

// arrayMethods are the Array.prototype methods whose native loop runs over
// this.length (or makes an array that long). fill is already JS; at, pop
// and push do constant work per call; toString calls this.join.
var arrayMethods = [...]string{"concat", "copyWithin", "every", "filter", "find", "findIndex", "findLast",
	"findLastIndex", "flat", "flatMap", "forEach", "includes", "indexOf", "join", "lastIndexOf", "map",
	"reduce", "reduceRight", "reverse", "shift", "slice", "some", "sort", "splice", "toLocaleString",
	"toReversed", "toSorted", "toSpliced", "unshift", "with"}

// arrayIterators make an iterator that walks this.length natively when
// spread or passed to a built-in.
var arrayIterators = [...]string{"keys", "entries"}

// boundNatives installs the bounds on rt's built-ins (except typed arrays,
// see boundTyped). It runs during lockdown.
func boundNatives(rt *sobek.Runtime, limits Limits, g *sobek.Object) *natives {
	v, err := rt.RunProgram(nativeJS)
	must(err)
	js := v.(*sobek.Object)
	n := &natives{rt: rt, b: boundsFor(limits.Timeout), maxBytes: float64(limits.MaxMemoryBytes), arrayOrder: js.Get("arrayOrder"),
		rangeError: g.Get("RangeError").(*sobek.Object), syntaxError: g.Get("SyntaxError").(*sobek.Object)}
	n.noop, _ = sobek.AssertFunction(js.Get("noop"))
	n.has, _ = sobek.AssertFunction(js.Get("has"))
	n.sortLarge, _ = sobek.AssertFunction(js.Get("sortLarge"))
	n.typed, _ = sobek.AssertFunction(js.Get("typed"))
	n.strIter, _ = sobek.AssertFunction(js.Get("stringIterator"))
	n.slowRx, _ = sobek.AssertFunction(js.Get("slowRegExp"))

	array := g.Get("Array").(*sobek.Object)
	arrayProto := array.Get("prototype").(*sobek.Object)
	n.arrayIters = map[string]sobek.Callable{}
	for _, name := range [...]string{"values", "keys", "entries"} {
		n.arrayIters[name], _ = sobek.AssertFunction(arrayProto.Get(name))
	}
	n.origSort = arrayProto.Get("sort")
	for _, name := range arrayMethods {
		n.replace(arrayProto, name, n.arrayMethod(name))
	}
	for _, name := range arrayIterators {
		n.replace(arrayProto, name, n.arrayMethod(name))
	}
	// values and Symbol.iterator are one function object; keep it so.
	if vals := n.replace(arrayProto, "values", n.arrayMethod("values")); vals != nil {
		must(arrayProto.DefineDataPropertySymbol(sobek.SymIterator, vals, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	}
	n.replace(array, "from", n.arrayFrom)

	strProto := g.Get("String").(*sobek.Object).Get("prototype").(*sobek.Object)
	n.replace(strProto, sobek.SymIterator, n.stringIterator)
	n.replace(strProto, "split", n.stringPieces("String.prototype.split", false))
	n.replace(strProto, "replaceAll", n.stringPieces("String.prototype.replaceAll", true))

	rxProto := g.Get("RegExp").(*sobek.Object).Get("prototype").(*sobek.Object)
	n.rxExec = rxProto.Get("exec")
	for _, s := range [...]*sobek.Symbol{sobek.SymSplit, sobek.SymReplace, sobek.SymMatch} {
		n.replace(rxProto, s, n.regexpMethod(s == sobek.SymSplit))
	}

	n.replace(g.Get("JSON").(*sobek.Object), "parse", n.jsonParse)

	fnProto := g.Get("Function").(*sobek.Object).Get("prototype").(*sobek.Object)
	n.replace(fnProto, "apply", n.spreadArgs("Function.prototype.apply", 1))
	reflect := g.Get("Reflect").(*sobek.Object)
	n.replace(reflect, "apply", n.spreadArgs("Reflect.apply", 2))
	n.replace(reflect, "construct", n.spreadArgs("Reflect.construct", 1))
	return n
}

// arrayMethod bounds Array.prototype[name]: see boundNatives. Iterators
// (values, keys, entries) are bounded by steps, as spreading one costs a
// step per element; the others by elements.
func (n *natives) arrayMethod(name string) func(sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	bound := n.b.elems
	switch name {
	case "values", "keys", "entries":
		bound = n.b.steps
	}
	returnsThis := name == "copyWithin" || name == "reverse"
	sorts := name == "sort" || name == "toSorted"
	concat := name == "concat"
	// These make a dense array of this.length in one native allocation,
	// as the spec has them do; past the memory limit they throw, as the
	// typed-array constructors do.
	copies := name == "toReversed" || name == "toSorted" || name == "toSpliced" || name == "with"
	return func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
		return func(fc sobek.FunctionCall) sobek.Value {
			args := fc.Arguments
			if concat {
				// concat loops over its array arguments too.
				copied := false
				for i, a := range args {
					if o, ok := a.(*sobek.Object); ok && o.ClassName() == "Array" && over(o, bound) {
						if !copied {
							args, copied = append([]sobek.Value(nil), args...), true
						}
						args[i] = n.viewOf(o)
					}
				}
			}
			if sobek.IsUndefined(fc.This) || sobek.IsNull(fc.This) {
				return n.call(orig, fc.This, args...) // the original's TypeError
			}
			o := fc.This.ToObject(n.rt)
			if !over(o, bound) {
				return n.call(orig, fc.This, args...)
			}
			if copies {
				if size := toLength(o.Get("length")) * 16; size > n.maxBytes {
					n.refuseAlloc("Array.prototype."+name, size)
				}
			}
			if name == "sort" {
				cmp := fc.Argument(0)
				if _, ok := sobek.AssertFunction(cmp); !ok && !sobek.IsUndefined(cmp) {
					return n.call(orig, fc.This, args...) // the original's TypeError
				}
				return n.call(n.sortLarge, sobek.Undefined(), o, cmp, n.origSort)
			}
			if sorts && (len(args) == 0 || sobek.IsUndefined(args[0])) {
				args = []sobek.Value{n.arrayOrder}
			}
			view := n.viewOf(o)
			v := n.call(orig, view, args...)
			if returnsThis && v == view {
				return o
			}
			return v
		}
	}
}

// arrayFrom bounds Array.from on an array-like (no Symbol.iterator): the
// native copy costs a step per element. Iterables use the bounded
// iterators.
func (n *natives) arrayFrom(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		if o, ok := fc.Argument(0).(*sobek.Object); ok {
			if it := o.GetSymbol(sobek.SymIterator); (it == nil || sobek.IsUndefined(it) || sobek.IsNull(it)) && over(o, n.b.steps) {
				args := append([]sobek.Value{n.viewOf(o)}, fc.Arguments[1:]...)
				return n.call(orig, fc.This, args...)
			}
		}
		return n.call(orig, fc.This, fc.Arguments...)
	}
}

// stringIterator bounds String.prototype[Symbol.iterator]: a long string
// gets a JS iterator.
func (n *natives) stringIterator(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		if sobek.IsUndefined(fc.This) || sobek.IsNull(fc.This) {
			return n.call(orig, fc.This)
		}
		s := fc.This.ToString()
		if float64(jsLength(s)) > n.b.steps {
			return n.call(n.strIter, sobek.Undefined(), s)
		}
		return n.call(orig, s)
	}
}

// stringPieces bounds String.prototype.split (and replaceAll) with a
// string pattern: the pieces (replacements) are counted first, in Go, and
// past the bound the call throws. A pattern with its own Symbol.split or
// Symbol.replace (a RegExp) is left to that method.
func (n *natives) stringPieces(what string, replaceAll bool) func(sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
		return func(fc sobek.FunctionCall) sobek.Value {
			pat := fc.Argument(0)
			if _, isObj := pat.(*sobek.Object); isObj || sobek.IsUndefined(fc.This) || sobek.IsNull(fc.This) ||
				sobek.IsUndefined(pat) || sobek.IsNull(pat) {
				return n.call(orig, fc.This, fc.Arguments...)
			}
			// The spec converts this, then the pattern; the original
			// converts them again, which for primitives is unobservable.
			s := fc.This.ToString()
			if float64(jsLength(s)) <= n.b.pieces {
				return n.call(orig, s, fc.Arguments...)
			}
			p := pat.ToString()
			args := append([]sobek.Value{p}, fc.Arguments[1:]...)
			var count float64
			if ps := p.String(); ps == "" {
				count = float64(jsLength(s)) + 1
			} else {
				count = float64(strings.Count(s.String(), ps)) + 1
			}
			if !replaceAll && len(args) > 1 && !sobek.IsUndefined(args[1]) {
				// split's limit caps the pieces it makes.
				if lim := args[1].ToFloat(); lim >= 0 && !math.IsNaN(lim) {
					count = min(count, lim)
				}
			}
			if count > n.b.pieces {
				n.refuse(what, count)
			}
			return n.call(orig, s, args...)
		}
	}
}

// regexpMethod bounds RegExp.prototype[Symbol.split/replace/match]: on a
// long string, a standard global regexp (and any splitting one) runs as a
// clone whose exec is JS (see nativeJS slowRegExp). The original's
// lastIndex is set as the method would have left it.
func (n *natives) regexpMethod(split bool) func(sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
		return func(fc sobek.FunctionCall) sobek.Value {
			rx, ok := fc.This.(*sobek.Object)
			if !ok || rx.ClassName() != "RegExp" || rx.Get("exec") != n.rxExec {
				// Not a regexp, or one with its own exec, which
				// the original calls per match already.
				return n.call(orig, fc.This, fc.Arguments...)
			}
			s := fc.Argument(0).ToString()
			args := append([]sobek.Value{s}, fc.Arguments[1:]...)
			if float64(jsLength(s)) <= n.b.pieces {
				return n.call(orig, rx, args...)
			}
			flags := rx.Get("flags").String()
			global := strings.ContainsRune(flags, 'g')
			if !split && !global {
				return n.call(orig, rx, args...) // one exec, no loop
			}
			clone := n.call(n.slowRx, sobek.Undefined(), rx, rx.Get("source"), n.rt.ToValue(flags)).(*sobek.Object)
			v := n.call(orig, clone, args...)
			if !split {
				if err := rx.Set("lastIndex", clone.Get("lastIndex")); err != nil {
					panic(err)
				}
			}
			return v
		}
	}
}

// spreadArgs bounds a function that spreads the array-like at argument
// index i into arguments: past the bound it throws (as engines do for too
// many arguments) rather than build the list natively.
func (n *natives) spreadArgs(what string, i int) func(sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
		return func(fc sobek.FunctionCall) sobek.Value {
			if o, ok := fc.Argument(i).(*sobek.Object); ok {
				if l := o.Get("length"); l != nil && toLength(l) > n.b.pieces {
					n.refuse(what, toLength(l))
				}
			}
			return n.call(orig, fc.This, fc.Arguments...)
		}
	}
}

// typedMethods are the %TypedArray%.prototype methods with a chunked
// fallback in nativeJS; the others copy memory or call JS per element, so
// the memory limit (which bounds a typed array's length) bounds them.
var typedMethods = [...]string{"includes", "indexOf", "lastIndexOf", "join", "toLocaleString", "sort"}

// boundTyped installs the bounds on %TypedArray%.prototype, proto. It runs
// when the first typed-array constructor is guarded, since that is the
// first time JS can reach it.
func (n *natives) boundTyped(proto *sobek.Object) {
	if n.typedDone {
		return
	}
	n.typedDone = true
	m := n.rt.NewObject()
	for _, name := range append(typedMethods[:], "subarray") {
		must(m.Set(name, proto.Get(name)))
	}
	fallbacks := n.call(n.typed, sobek.Undefined(), m, n.rt.ToValue(n.b.elems), n.rt.ToValue(n.b.pieces)).(*sobek.Object)
	for _, name := range typedMethods {
		slow, _ := sobek.AssertFunction(fallbacks.Get(name))
		n.replace(proto, name, func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
			return func(fc sobek.FunctionCall) sobek.Value {
				if n.typedOver(fc.This, n.b.elems) {
					return n.call(slow, fc.This, fc.Arguments...)
				}
				return n.call(orig, fc.This, fc.Arguments...)
			}
		})
	}
	// Iterators over a long typed array iterate a view: an array iterator
	// over a Proxy reads length and elements through it, as over the
	// typed array itself.
	values := n.replace(proto, "values", n.typedIterator("values"))
	n.replace(proto, "keys", n.typedIterator("keys"))
	n.replace(proto, "entries", n.typedIterator("entries"))
	if values != nil {
		must(proto.DefineDataPropertySymbol(sobek.SymIterator, values, sobek.FLAG_TRUE, sobek.FLAG_TRUE, sobek.FLAG_FALSE))
	}
}

// typedOver reports whether v is a typed array longer than bound. The
// length getter throws for anything else; the original then throws its
// own TypeError.
func (n *natives) typedOver(v sobek.Value, bound float64) (over bool) {
	o, ok := v.(*sobek.Object)
	if !ok {
		return false
	}
	if ex := n.rt.Try(func() { over = toLength(o.Get("length")) > bound }); ex != nil {
		return false
	}
	return over
}

func (n *natives) typedIterator(kind string) func(sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
		return func(fc sobek.FunctionCall) sobek.Value {
			if n.typedOver(fc.This, n.b.steps) {
				// The Array.prototype iterator of the same kind walks
				// the view; both make %ArrayIteratorPrototype% objects.
				return n.call(n.arrayIters[kind], n.viewOf(fc.This.(*sobek.Object)))
			}
			return n.call(orig, fc.This, fc.Arguments...)
		}
	}
}
