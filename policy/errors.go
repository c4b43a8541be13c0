package policy

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by Compile, Call and CallWith wraps
// exactly one of them, so callers branch with errors.Is and print the error
// for the details (module, line and column, message, JS stack).
var (
	// ErrSyntax: a module does not parse or compile, an import cannot be
	// resolved within the bundle, or an imported name is not exported.
	ErrSyntax = errors.New("policy: syntax error")
	// ErrTimeout: the call ran longer than Limits.Timeout, or its context
	// was cancelled or expired first.
	ErrTimeout = errors.New("policy: time limit exceeded")
	// ErrMemory: the Go heap grew by more than Limits.MaxMemoryBytes during
	// the call, or a built-in was asked to allocate more than that at once.
	ErrMemory = errors.New("policy: memory limit exceeded")
	// ErrStackOverflow: the JS call depth exceeded Limits.MaxCallStack.
	ErrStackOverflow = errors.New("policy: call stack limit exceeded")
	// ErrThrown: the JS code threw (including the TypeErrors the sandbox
	// throws for Date.now, Math.random and the Function constructor).
	ErrThrown = errors.New("policy: uncaught exception")
	// ErrNoExport: the entry module has no export of that name, or it is
	// not a function.
	ErrNoExport = errors.New("policy: no such exported function")
	// ErrConvert: an argument or host global has a Go type the sandbox does
	// not convert, or the result cannot be converted back (a function, a
	// cycle, nesting deeper than maxDepth).
	ErrConvert = errors.New("policy: value conversion failed")
	// ErrPanic: Go code reached from JS (a host function given to CallWith)
	// panicked. The runtime is discarded.
	ErrPanic = errors.New("policy: host panic")
)

// SyntaxError locates a compile-time error. It wraps ErrSyntax.
type SyntaxError struct {
	Module string // bundle path of the module, as given to Compile
	Line   int    // 1-based; 0 when sobek did not report a position
	Column int    // 1-based; 0 when unknown
	Msg    string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%v: %s:%d:%d: %s", ErrSyntax, e.Module, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%v: %s: %s", ErrSyntax, e.Module, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// RunError describes a failed call. Kind is one of the sentinels above and is
// what errors.Is matches.
type RunError struct {
	Kind    error
	Program string // the name given to Compile
	Fn      string // the exported function called; "" during module initialisation
	Message string // the thrown value as a string, or the limit that was hit
	Stack   string // JS stack at the point of failure, when known
}

func (e *RunError) Error() string {
	where := e.Program
	if e.Fn != "" {
		where += "." + e.Fn
	} else {
		where += " (module initialisation)"
	}
	s := fmt.Sprintf("%v: %s: %s", e.Kind, where, e.Message)
	if e.Stack != "" {
		s += "\n" + e.Stack
	}
	return s
}

func (e *RunError) Unwrap() error { return e.Kind }
