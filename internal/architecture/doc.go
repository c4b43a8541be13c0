// Package architecture owns nothing at run time: its test checks the import
// arrows between Charter's packages against the layering that
// ARCHITECTURE.md draws, so that an arrow added the wrong way fails `make
// test` rather than a reader's understanding.
package architecture
