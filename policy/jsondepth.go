package policy

import (
	"strconv"

	"github.com/grafana/sobek"
)

// MaxJSONDepth is how deeply arrays and objects may nest in the text given
// to JSON.parse in the sandbox, and so in an app's request.body.json() and
// ccf.bufToJsonCompatible, which call it. sobek's parser recurses once per
// level on the Go stack, with nothing to stop it: a request body of a few
// million "[" ended the process with a fatal stack overflow, and a million
// cost about 1 GB. CCF sets no count (QuickJS stops at its stack size); 1024
// is far beyond what any JSON document of this kind needs.
const MaxJSONDepth = 1024

// msgJSONDepth is the SyntaxError JSON.parse throws for deeper text.
var msgJSONDepth = "JSON.parse: arrays and objects nested deeper than " + strconv.Itoa(MaxJSONDepth) + " levels"

// jsonTooDeep reports whether the JSON text s opens more than max arrays or
// objects at once. It counts brackets outside strings (a string runs from
// an unescaped quote to the next; a backslash escapes the byte after it),
// which for any text the parser accepts is exactly its nesting; for text
// it rejects, the parser cannot go deeper than the brackets it has seen
// either. One pass, no allocation: it runs before the parser recurses.
func jsonTooDeep(s string, max int) bool {
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}

// jsonParse bounds JSON.parse: the text is converted once (as the spec
// does, before anything else), checked with jsonTooDeep, and handed to the
// original with the reviver, if any, unchanged.
func (n *natives) jsonParse(orig sobek.Callable) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		text := fc.Argument(0).ToString()
		if jsonTooDeep(text.String(), MaxJSONDepth) {
			o, err := n.rt.New(n.syntaxError, n.rt.ToValue(msgJSONDepth))
			if err != nil {
				panic(err)
			}
			panic(o)
		}
		args := append([]sobek.Value{text}, fc.Arguments[min(1, len(fc.Arguments)):]...)
		return n.call(orig, fc.This, args...)
	}
}
