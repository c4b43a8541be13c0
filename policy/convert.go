package policy

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"sort"

	"github.com/grafana/sobek"
)

// maxDepth bounds the nesting of converted values in both directions; it
// also stops cycles.
const maxDepth = 64

// toJS converts a Go value into a fresh JS value owned by rt. Containers are
// copied, never wrapped, so JS cannot reach Go methods or alias Go memory.
//
//	nil                          null
//	sobek.Value                  itself (sobek.Undefined() for undefined)
//	bool, string, ints, floats   boolean, string, number
//	*big.Int                     BigInt
//	[]byte                       ArrayBuffer (a copy)
//	[]string, []any, other slices Array
//	map[string]V                 plain Object, keys in sorted order
//	func(...)                    a JS function wrapping it (sobek's rules)
//	HostValue                    what it builds on rt
//
// ToJS copies a Go value into fresh JS values of rt by the rules above: the
// conversion Call applies to its arguments, for hosts (JS apps) that build
// their own arguments.
func ToJS(rt *sobek.Runtime, v any) (sobek.Value, error) { return toJS(rt, v, 0) }

// HostValue is a value a host builds on the runtime that runs the call,
// for what the conversions above cannot express: objects whose properties
// are computed on access, native methods that throw JS errors of a given
// type, ArrayBuffers made during the call. It runs once per conversion.
type HostValue func(rt *sobek.Runtime) (sobek.Value, error)

func toJS(rt *sobek.Runtime, v any, depth int) (sobek.Value, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case HostValue:
		return x(rt)
	case nil:
		return sobek.Null(), nil
	case sobek.Value:
		return x, nil
	case bool, string, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, *big.Int:
		return rt.ToValue(x), nil
	case []byte:
		return rt.ToValue(rt.NewArrayBuffer(append([]byte(nil), x...))), nil
	case []string:
		items := make([]any, len(x))
		for i, s := range x {
			items[i] = s
		}
		return rt.NewArray(items...), nil
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			jv, err := toJS(rt, e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			items[i] = jv
		}
		return rt.NewArray(items...), nil
	case map[string]any:
		o := rt.NewObject()
		for _, k := range sortedKeys(x) {
			jv, err := toJS(rt, x[k], depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if err := o.Set(k, jv); err != nil {
				return nil, err
			}
		}
		return o, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Func:
		return rt.ToValue(v), nil
	case reflect.Slice, reflect.Array:
		items := make([]any, rv.Len())
		for i := range items {
			jv, err := toJS(rt, rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			items[i] = jv
		}
		return rt.NewArray(items...), nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		o := rt.NewObject()
		for _, k := range keys {
			jv, err := toJS(rt, rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.String(), err)
			}
			if err := o.Set(k.String(), jv); err != nil {
				return nil, err
			}
		}
		return o, nil
	case reflect.Pointer:
		if rv.IsNil() {
			return sobek.Null(), nil
		}
		return toJS(rt, rv.Elem().Interface(), depth+1)
	}
	return nil, fmt.Errorf("unsupported Go type %T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fromJS converts a JS result to plain Go values that do not alias the
// runtime (which goes back to the pool):
//
//	undefined, null     nil
//	boolean, string     bool, string
//	number              int64 when integral, else float64
//	BigInt              *big.Int
//	Array               []any
//	ArrayBuffer         []byte (a copy)
//	typed array         []byte of its bytes (a copy)
//	other objects       map[string]any of own enumerable string keys
//
// Functions, symbols, cycles and nesting deeper than maxDepth are errors.
// Getters run; an exception they throw is returned as a *sobek.Exception.
func fromJS(rt *sobek.Runtime, v sobek.Value) (out any, err error) {
	if ex := rt.Try(func() { out, err = exportValue(rt, v, 0) }); ex != nil {
		return nil, ex
	}
	return out, err
}

func exportValue(rt *sobek.Runtime, v sobek.Value, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply (or cyclic)")
	}
	if v == nil || sobek.IsUndefined(v) || sobek.IsNull(v) {
		return nil, nil
	}
	o, ok := v.(*sobek.Object)
	if !ok {
		switch x := v.Export().(type) {
		case *sobek.Symbol:
			return nil, errors.New("a symbol cannot be returned")
		default:
			return x, nil
		}
	}
	if _, isFn := sobek.AssertFunction(o); isFn {
		return nil, errors.New("a function cannot be returned")
	}
	switch o.ClassName() {
	case "Array":
		n := o.Get("length").ToInteger()
		if n > 1<<24 {
			return nil, fmt.Errorf("array of %d elements is too long to return", n)
		}
		items := make([]any, n)
		for i := range items {
			e, err := exportValue(rt, o.Get(fmt.Sprint(i)), depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			items[i] = e
		}
		return items, nil
	case "ArrayBuffer":
		if ab, ok := o.Export().(sobek.ArrayBuffer); ok {
			return append([]byte(nil), ab.Bytes()...), nil
		}
	}
	if ta := o.Get("buffer"); ta != nil {
		if ab, ok := ta.Export().(sobek.ArrayBuffer); ok && o.Get("BYTES_PER_ELEMENT") != nil {
			off, n := o.Get("byteOffset").ToInteger(), o.Get("byteLength").ToInteger()
			b := ab.Bytes()
			if off >= 0 && n >= 0 && off+n <= int64(len(b)) {
				return append([]byte(nil), b[off:off+n]...), nil
			}
		}
	}
	m := make(map[string]any)
	for _, k := range o.Keys() {
		e, err := exportValue(rt, o.Get(k), depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		m[k] = e
	}
	return m, nil
}
