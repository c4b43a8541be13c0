// Package policy is Charter's one JavaScript sandbox. Registration
// policies, the governance constitution, ballots and (later) JS apps all run
// here, as ES modules on github.com/grafana/sobek.
//
// # Programs
//
// Compile takes a bundle (module path → source) and an entry module, and
// parses, compiles and links every module up front: a syntax error, an
// import that names no module of the bundle, or an imported name that no
// module exports is a *SyntaxError (ErrSyntax) naming the module and, where
// sobek reports it, line and column. Specifiers are relative ("./x.js",
// "../lib/y.js", against the importer's directory) or bundle-absolute
// ("/lib/y.js"); bare specifiers, paths above the bundle root, dynamic
// import() and top-level await on a promise that never settles are refused.
// Cyclic imports work. Compile also builds one runtime, so top-level code
// that throws or runs away fails Compile rather than the first call. A
// Program is immutable and safe for concurrent use; compile once per program
// version and keep it.
//
// # Calls and pooling
//
// Call and CallWith run an exported function of the entry module on a
// pooled runtime: an idle one if there is one, else a new one while fewer
// than 8×GOMAXPROCS exist, else the call waits (bounded by its context) for
// one to come back: building a runtime costs far more than a call, and JS
// runs on the CPU, so more runtimes would only queue. Module top-level code
// runs once per runtime, when it is
// built, not once per call: module-level state (a `let` counter, a cache)
// persists across the calls that happen to land on the same runtime and is
// lost when the runtime is dropped, so policies must not rely on it.
// The function an export names is looked up once per runtime: a module that
// reassigns its own exported function at run time keeps the first one. A
// runtime whose call was interrupted (timeout, memory, context), overflowed
// its stack or panicked is discarded, never reused; one whose call returned
// or threw an ordinary exception goes back to the pool. Host globals given
// to CallWith are deleted after the call. Globals a call creates itself and
// changes it makes to built-ins (e.g. Array.prototype) stay on that runtime.
//
// Arguments are copied into fresh JS values: nil → null, bool/string/numbers
// as such, *big.Int → BigInt, []byte → ArrayBuffer (a copy; CCF passes
// payloads as ArrayBuffer), slices → Array, map[string]V → plain object,
// sobek.Value as is (sobek.Undefined() for undefined), Go funcs → JS
// functions (sobek's conversions; a returned non-nil error throws). Structs
// are refused (ErrConvert) so JS never reaches Go methods. Results are
// copied out: undefined/null → nil, numbers → int64 if integral else
// float64, Array → []any, object → map[string]any, ArrayBuffer and typed
// arrays → []byte; functions, symbols, cycles are ErrConvert.
//
// # What the sandbox offers
//
// Only the ECMAScript standard library (JSON, Math, String, Array, Map,
// Set, RegExp, typed arrays, Promise, Proxy, Reflect, Date for fixed
// instants, ...). There is no require, no console, no timers, no network,
// no file system (source-map comments are not followed), and:
//
//   - no clock: Date.now(), new Date() and Date() throw TypeError "Date: the
//     clock is not available in the policy sandbox"; new Date(ms),
//     Date.UTC and Date.parse work. Local-time methods (getHours, toString)
//     use the host's time zone: run nodes with TZ=UTC.
//   - no randomness: Math.random() throws TypeError.
//   - no code from strings: eval is removed; Function and the generator and
//     async function constructors (however reached) throw TypeError. (The
//     generator one is replaced only in bundles that have a generator
//     function: without one, JS cannot reach it.)
//
// # Limits and their precision
//
// One watchdog goroutine checks every running call each millisecond
// (watchdogTick) and interrupts its runtime on the first limit exceeded.
// sobek honours an interrupt at the next JS instruction; a single native
// built-in runs to completion first. A call reads no clock or heap metric
// itself: the watchdog takes a call's CPU-time and heap baselines the first
// time it sees it, within a tick of its start, so what a call does before
// then (at most a tick's worth) is not charged.
//
//   - Timeout (default 100 ms): on Linux, the CPU time of one call (the
//     goroutine is pinned to its thread for the call and the thread's CPU
//     clock is read), so a call on a loaded machine is not cut off for
//     waiting its turn; a wall-clock backstop of 20× Timeout still stops a
//     call starved of CPU. Elsewhere, wall-clock time. It includes the
//     conversion of the result and also applies to module initialisation.
//     Overshoot is two ticks (one uncharged before the baseline, one
//     between checks) plus the longest native step.
//     A cancelled or expired ctx stops a call the same way. ErrTimeout.
//   - MaxCallStack (default 1024): JS call depth, exact (sobek's
//     SetMaxCallStackSize); cannot be caught by JS. ErrStackOverflow.
//   - MaxMemoryBytes (default 64 MiB): sobek has no heap accounting, so
//     this bounds the growth of the process's Go heap objects (runtime
//     metric /memory/classes/heap/objects:bytes: live plus unswept) since
//     the watchdog first saw the call. It is process-wide, not per call:
//     concurrent calls and other goroutines count against every running
//     call, and garbage counts until collected. To avoid charging garbage, going over the limit
//     triggers one GC and the call is interrupted only if still over after
//     it; going over twice the limit interrupts at once. Overshoot is what
//     the call allocates in two ticks (about 2 ms) plus one native step.
//     ErrMemory. Native steps that would allocate in one go are bounded
//     before they run: String.prototype.repeat/padStart/padEnd,
//     ArrayBuffer and typed-array constructors throw RangeError past
//     MaxMemoryBytes, and Array.prototype.fill is reimplemented in JS so it
//     is interruptible (sobek's native fill on new Array(1e9) would run for
//     minutes and exhaust memory). The guards are Go wrappers around the
//     originals, which no JS value reaches; a typed-array argument's size
//     is taken from its real type and length, not from instanceof (which JS
//     can fool). A typed-array constructor's guard is installed the first
//     time its global is read (until then the global is an accessor, so
//     Object.getOwnPropertyDescriptor shows get/set): most code never uses
//     them, and the lockdown of each runtime is cheaper for it.
//   - Native built-ins are bounded by the time limit (native.go): each
//     built-in that loops over a length JS chooses for free (Array.prototype
//     methods and iterators, Array.from, typed-array search/join/sort and
//     iterators, string iteration, RegExp split/replace/match) does at most
//     a quarter of Timeout's worth of work natively and then runs
//     interruptibly (over a Proxy view with Go traps, in typed-array chunks,
//     with JS comparators or a JS exec), computing the same result; where
//     the cost is a count known up front (split/replaceAll pieces, apply
//     arguments) it throws a RangeError instead. JSON.parse refuses text
//     nested deeper than MaxJSONDepth with a SyntaxError, before parsing.
//
// Gaps, stated plainly: the bounds cover the built-ins that were found to
// loop long (a benchmark of each over new Array(1e7), a 10 MB typed array
// and a 10 MB string), not every native path: JSON.stringify of a deeply
// nested object built by JS (its cycle check is quadratic in depth),
// Map and Set iterators (their size is bounded by the memory limit only),
// and copies at memmove speed (typed-array fill, set, slice, reverse,
// copyWithin; up to MaxMemoryBytes each) still run to completion. Past the
// bounds, a callback of forEach/map/etc. receives the view, not the array,
// as its third argument, and a length getter of an array-like runs twice.
// The memory bound is approximate and shared, a safety net against runaway
// policies rather than an accounting of each call.
package policy
