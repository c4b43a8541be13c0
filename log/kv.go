package log

import "errors"

// ErrNotFound is the key-value contract's "absent": what a reader of the
// ledger's state returns for a key, transaction or entry it does not hold.
// It is defined here, below the ledger, so that a package reading state
// through an interface (the JS app runtime, which the CLI links to build
// bundles) tests for it without linking the ledger; internal/ledger's
// ErrNotFound is this same value.
var ErrNotFound = errors.New("ledger: not found")
