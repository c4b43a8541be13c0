package main

import (
	"fmt"
	"io"
	"time"
)

// progressLine is a status line rewritten in place on stderr, at most five
// times a second (or when forced), and erased by done if it was shown; with
// quiet it shows nothing.
type progressLine struct {
	w     io.Writer
	quiet bool
	last  time.Time
	shown bool
}

func (p *progressLine) update(force bool, format string, args ...any) {
	if p.quiet || (!force && time.Since(p.last) < 200*time.Millisecond) {
		return
	}
	p.last, p.shown = time.Now(), true
	fmt.Fprintf(p.w, "\r"+format, args...)
}

// done erases the line, so that what follows starts clean.
func (p *progressLine) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
