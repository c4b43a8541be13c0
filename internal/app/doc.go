// Package app runs CCF-style JavaScript applications: bundles deployed by
// governance (set_js_app), with CCF's bundle format, `ccf` global, request
// and response objects and KV rules, so a bundle built for CCF runs
// unchanged. It is pure: no network, no HTTP server, no authentication, no
// ledger beyond the State, Consensus and Historical interfaces. The node's
// HTTP layer routes (Match, Methods), authenticates (EndpointInfo's
// AuthnPolicies) and builds the caller, runs the call (Call), checks the
// read set and commits the write set. spec/apps.md describes what JS sees.
//
// # Bundles
//
// ParseBundle strictly decodes a bundle.json (limits: MaxBundleBytes,
// MaxModules, MaxEndpoints; module names are clean posix relative paths);
// BuildBundle makes one from an app folder (app.json and src/**/*.js).
// Load compiles every module once with the policy sandbox
// (policy.CompileModules) and checks each endpoint's js_module and
// js_function; it also runs each endpoint module's top-level code once,
// against an empty state, so a throwing module or an export that is not a
// function is refused at proposal time with an error naming the endpoint.
//
// # Calls
//
// CCF runs every request in a fresh interpreter, and so does Call: the
// compiled module records are shared, but each call gets a new, locked-down
// sobek runtime in which the endpoint module and its imports are evaluated,
// so module-level state, globals and changes to built-ins never pass from
// one request (or user) to the next. interpreter_reuse is accepted and
// kept in the bundle but not honoured. A fresh interpreter is cheap but
// not free (BenchmarkBankingTransfer: about 2,200 allocations and 250 µs
// of process CPU per call, GC included, on a shared 2-core box; mostly the
// sandbox's lockdown, evaluating the module, JSON and GC), so the host side builds only what a handler
// touches: ccf's, ccf.crypto's, console's and request.body's functions
// are inherited from a prototype that builds each on first read (reads,
// for-in, `in` and overriding by assignment behave as for own properties;
// Object.keys(ccf) lists only kv), and, as in CCF, KV map handles share
// one prototype holding their methods. Calls are bounded by the sandbox's
// limits (RuntimeOptions, CCF's set_js_runtime_options): CPU time, heap
// growth and call depth; a call that exceeds one, throws, or returns an
// invalid response fails with ErrException and the process carries on.
//
// # Transactions
//
// A Tx overlays a request's writes on the committed State: reads see the
// request's own writes; the writes come out as a *log.WriteSet (last value
// per key, in order of first write); everything read from State is kept in
// a ReadSet (each key's observed value or absence, and a digest of every
// map scanned whole by forEach, size or clear) for a caller's optimistic
// conflict check (ReadSet.Check; the node instead records reads as stored
// and checks them when the transaction applies, internal/node/appstate.go). MapAccess holds CCF's
// rules over Charter's one list of governed maps (log.GovernedPrefixes):
// the public maps governance writes (public:ccf.gov.*, public:ccf.internal.*,
// public:scitt.*) are read-only, so a write throws CCF's TypeError "Cannot
// call .set() on read-only table named public:scitt.policy in application
// execution context"; the maps the nodes maintain (public:charter.*) and
// the private forms of governed namespaces (ccf.gov.*, scitt.*, ...) are
// inaccessible; and readonly or historical endpoints may write nothing. A State error aborts the call: Call returns
// it whatever the JS did with the exception it saw.
//
// # Concurrency
//
// An App is immutable and safe for concurrent calls; a Tx belongs to one
// call. State, Consensus and Historical must be safe for concurrent use.
package app
