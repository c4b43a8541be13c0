package policy

import (
	"strings"

	"github.com/grafana/sobek/ast"
	"github.com/grafana/sobek/parser"
)

// namedParams reports, for each of the first n arguments of the entry
// module's exported function fn, whether the function can observe it. An
// argument the function cannot observe need not be built: a registration
// policy that reads only phdr then costs no copy of a payload that may be
// megabytes.
//
// The answer is conservative: true unless the source proves otherwise. It
// proves it only for `export function fn(a, b, …) {…}` in the entry module
// with plain parameters (no defaults, patterns or rest), where
//   - the name fn occurs nowhere else in the module except as a property
//     name after "." (so no code rebinds it), and
//   - the body never spells the parameter's name or `arguments`, as a word,
//     anywhere: in code, strings or comments alike.
//
// In strict code (modules are) that is enough: a parameter is reachable
// only through its name or `arguments`, since direct eval and `with` are
// unavailable (eval is removed from the sandbox; `with` is a syntax error).
// A module with a `\u` escape anywhere is not analysed, since an escaped
// identifier spells a name without its letters. Arguments past the
// declared parameters are unobservable likewise unless `arguments` occurs.
func namedParams(src, fn string, n int) []bool {
	all := make([]bool, n)
	for i := range all {
		all[i] = true
	}
	if strings.Contains(src, `\u`) {
		return all
	}
	prog, err := parser.ParseFile(nil, "", src, 0, parser.IsModule, parser.WithDisableSourceMaps)
	if err != nil {
		return all
	}
	var f *ast.FunctionLiteral
	for _, st := range prog.Body {
		ed, ok := st.(*ast.ExportDeclaration)
		if !ok || ed.IsDefault || ed.HoistableDeclaration == nil || ed.HoistableDeclaration.FunctionDeclaration == nil {
			continue
		}
		if lit := ed.HoistableDeclaration.FunctionDeclaration.Function; lit.Name != nil && lit.Name.Name.String() == fn {
			f = lit
		}
	}
	if f == nil || f.ParameterList.Rest != nil || wordCount(src, fn, true) != 1 {
		return all
	}
	base := prog.File.Base()
	from, to := int(f.Body.LeftBrace)-base, int(f.Body.RightBrace)-base+1
	if from < 0 || to > len(src) || from >= to || src[from] != '{' || src[to-1] != '}' {
		return all
	}
	body := src[from:to]
	if wordCount(body, "arguments", false) > 0 {
		return all
	}
	used := make([]bool, n)
	for i, b := range f.ParameterList.List {
		id, ok := b.Target.(*ast.Identifier)
		if !ok || b.Initializer != nil {
			return all
		}
		if i < n {
			used[i] = wordCount(body, id.Name.String(), false) > 0
		}
	}
	return used
}

// wordCount counts the occurrences of word in src not adjacent to an ASCII
// identifier character (a non-ASCII neighbour counts as a boundary, which
// can only overcount). With skipMembers, occurrences whose previous
// non-space character is "." (property names) are not counted.
func wordCount(src, word string, skipMembers bool) int {
	count := 0
	for i := 0; ; {
		j := strings.Index(src[i:], word)
		if j < 0 {
			return count
		}
		start, end := i+j, i+j+len(word)
		i = start + 1
		if start > 0 && isIdentByte(src[start-1]) || end < len(src) && isIdentByte(src[end]) {
			continue
		}
		if skipMembers {
			// A property name, but not a rest element ("...name"), which
			// in an assignment pattern rebinds name.
			before := strings.TrimRight(src[:start], " \t\r\n")
			if strings.HasSuffix(before, ".") && !strings.HasSuffix(before, "..") {
				continue
			}
		}
		count++
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
