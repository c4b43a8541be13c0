package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/grafana/sobek"
)

// Call invokes the entry module's exported function fn with args converted
// to JS (see the package documentation for the conversions) and converts its
// result back to Go. It is safe for concurrent use.
func (p *Program) Call(ctx context.Context, fn string, args ...any) (any, error) {
	return p.CallWith(ctx, nil, fn, args...)
}

// CallWith is Call with host globals: each entry of globals is defined on
// the global object for this call only and deleted afterwards, so a later
// call on the same pooled runtime does not see it. Values convert as
// arguments do; Go functions are wrapped by sobek (arguments converted from
// JS, a non-nil error result thrown as a JS exception). A name that is
// already a global (a built-in or a global the modules created) is refused
// with ErrConvert rather than shadowed.
func (p *Program) CallWith(ctx context.Context, globals map[string]any, fn string, args ...any) (any, error) {
	return p.callBuilt(ctx, globals, fn, func(rt *sobek.Runtime) ([]sobek.Value, error) {
		jsArgs := make([]sobek.Value, len(args))
		for i, a := range args {
			v, err := toJS(rt, a, 0)
			if err != nil {
				return nil, fmt.Errorf("argument %d: %w", i, err)
			}
			jsArgs[i] = v
		}
		return jsArgs, nil
	})
}

// argsBuilder makes the arguments of one call as fresh values of rt, the
// runtime the call runs on. An error is reported as ErrConvert.
type argsBuilder func(rt *sobek.Runtime) ([]sobek.Value, error)

// callBuilt is CallWith for callers in this package that make the JS
// arguments themselves: RegistrationPolicy builds phdr directly as JS
// objects rather than through a Go map and toJS, which costs a quarter of a
// policy call. args must return values no earlier call could have seen
// (objects are mutable by JS and the runtime is pooled).
func (p *Program) callBuilt(ctx context.Context, globals map[string]any, fn string, args argsBuilder) (any, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, &RunError{Kind: ErrTimeout, Program: p.name, Fn: fn, Message: err.Error()}
	}
	inst, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	res, reusable, err := p.call(ctx, inst, globals, fn, args)
	if reusable {
		p.put(inst)
	} else {
		p.discard(inst)
	}
	return res, err
}

func (p *Program) call(ctx context.Context, inst *instance, globals map[string]any, fn string, args argsBuilder) (res any, reusable bool, err error) {
	rt := inst.rt
	var fired error // the limit the watchdog enforced, if any
	defer func() {
		if x := recover(); x != nil {
			res, reusable, err = nil, false, &RunError{Kind: ErrPanic, Program: p.name, Fn: fn, Message: fmt.Sprint(x)}
			if fired != nil {
				err = &RunError{Kind: baseKind(fired), Program: p.name, Fn: fn, Message: limitMessage(fired, p.limits)}
			}
		}
	}()

	f, ok := inst.fns[fn]
	if !ok {
		if f, ok = sobek.AssertFunction(inst.ns.Get(fn)); ok {
			if inst.fns == nil {
				inst.fns = map[string]sobek.Callable{}
			}
			inst.fns[fn] = f
		}
	}
	if !ok {
		return nil, true, &RunError{Kind: ErrNoExport, Program: p.name, Fn: fn, Message: "the entry module has no exported function of that name"}
	}
	jsArgs, err := args(rt)
	if err != nil {
		return nil, true, &RunError{Kind: ErrConvert, Program: p.name, Fn: fn, Message: err.Error()}
	}
	global := rt.GlobalObject()
	set := make([]string, 0, len(globals))
	defer func() {
		if reusable {
			for _, k := range set {
				global.Delete(k)
			}
		}
	}()
	for k, g := range globals {
		if global.Get(k) != nil {
			return nil, true, &RunError{Kind: ErrConvert, Program: p.name, Fn: fn, Message: fmt.Sprintf("host global %q is already defined", k)}
		}
		v, err := toJS(rt, g, 0)
		if err != nil {
			return nil, true, &RunError{Kind: ErrConvert, Program: p.name, Fn: fn, Message: fmt.Sprintf("host global %q: %v", k, err)}
		}
		if err := global.Set(k, v); err != nil {
			return nil, true, &RunError{Kind: ErrConvert, Program: p.name, Fn: fn, Message: fmt.Sprintf("host global %q: %v", k, err)}
		}
		set = append(set, k)
	}

	// Everything that can run JS — the function, getters reached while
	// converting its result, toString of a thrown value — happens under the
	// watchdog.
	w := &inst.watch
	p.startWatch(w, ctx, rt)
	var jsErr error
	func() {
		defer func() { fired = wd.stop(w) }()
		var v sobek.Value
		v, jsErr = f(sobek.Undefined(), jsArgs...)
		if jsErr == nil {
			res, err = fromJS(rt, v)
			if err != nil {
				err = p.conversionError(rt, fn, err)
			}
		} else {
			err = p.runError(rt, fn, jsErr)
		}
	}()
	if fired != nil {
		// The limit fired, maybe between the last JS instruction and stop:
		// the runtime may hold a pending interrupt. Report the limit.
		return nil, false, &RunError{Kind: baseKind(fired), Program: p.name, Fn: fn, Message: limitMessage(fired, p.limits), Stack: stackOf(jsErr)}
	}
	if err != nil {
		var re *RunError
		reusable = errors.As(err, &re) && (re.Kind == ErrThrown || re.Kind == ErrConvert)
		return nil, reusable, err
	}
	return res, true, nil
}

// conversionError distinguishes a result that cannot be converted from an
// interruption or exception raised by JS code run during conversion.
func (p *Program) conversionError(rt *sobek.Runtime, fn string, err error) error {
	var ex *sobek.Exception
	if errors.As(err, &ex) {
		return p.runError(rt, fn, err)
	}
	return &RunError{Kind: ErrConvert, Program: p.name, Fn: fn, Message: "result: " + err.Error()}
}

// runError classifies an error returned by sobek. Formatting a thrown value
// may run JS (toString), so it must be called while the watchdog is on.
func (p *Program) runError(rt *sobek.Runtime, fn string, err any) error {
	if v, ok := err.(sobek.Value); ok { // a rejected module-evaluation promise
		if e, ok := v.Export().(error); ok {
			err = e
		} else {
			err = &RunError{Kind: ErrThrown, Program: p.name, Fn: fn, Message: describe(rt, v)}
		}
	}
	var (
		intr *sobek.InterruptedError
		so   *sobek.StackOverflowError
		ex   *sobek.Exception
		re   *RunError
	)
	switch e := err.(error); {
	case errors.As(e, &re):
		return re
	case errors.As(e, &intr):
		kind, _ := intr.Value().(error)
		if kind == nil || !(errors.Is(kind, ErrTimeout) || errors.Is(kind, ErrMemory)) {
			kind = ErrTimeout
		}
		return &RunError{Kind: baseKind(kind), Program: p.name, Fn: fn, Message: limitMessage(kind, p.limits), Stack: stackOf(e)}
	case errors.As(e, &so):
		return &RunError{Kind: ErrStackOverflow, Program: p.name, Fn: fn,
			Message: fmt.Sprintf("call depth over %d", p.limits.MaxCallStack), Stack: stackOf(e)}
	case errors.As(e, &ex):
		return &RunError{Kind: ErrThrown, Program: p.name, Fn: fn, Message: describe(rt, ex.Value()), Stack: stackOf(e)}
	default:
		return &RunError{Kind: ErrPanic, Program: p.name, Fn: fn, Message: e.Error()}
	}
}

func baseKind(err error) error {
	if errors.Is(err, ErrMemory) {
		return ErrMemory
	}
	return ErrTimeout
}

// describe renders a thrown value as JS would print it, without letting a
// hostile toString escape.
func describe(rt *sobek.Runtime, v sobek.Value) (s string) {
	if v == nil {
		return "undefined"
	}
	if ex := rt.Try(func() { s = v.String() }); ex != nil {
		return "<exception value whose toString throws>"
	}
	return s
}

func stackOf(err error) string {
	var ex *sobek.Exception
	if !errors.As(err, &ex) {
		return ""
	}
	var b bytes.Buffer
	for _, f := range ex.Stack() {
		b.WriteString("\tat ")
		f.Write(&b)
		b.WriteByte('\n')
	}
	return b.String()
}

func limitMessage(kind error, l Limits) string {
	switch {
	case errors.Is(kind, ErrMemory):
		return fmt.Sprintf("heap grew by more than %d bytes", l.MaxMemoryBytes)
	case errors.Is(kind, ErrTimeout) && kind != ErrTimeout:
		return kind.Error()
	default:
		return fmt.Sprintf("ran longer than %v", l.Timeout)
	}
}
