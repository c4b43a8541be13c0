package app

import (
	"slices"
	"strings"
)

// Match finds the endpoint for method (any case) and path (without the
// /app prefix, without the query, percent-decoded by the caller) and
// returns it with the path parameters. Templates match segment by segment;
// among the templates of that method that match, the most specific wins:
// at the first segment where two differ, a literal beats a parameter (CCF
// matches exact paths before templated ones). ok is false if no endpoint
// of that method matches; Methods tells 404 from 405.
func (a *App) Match(method, path string) (ep *Endpoint, params map[string]string, ok bool) {
	method = strings.ToUpper(method)
	segs := splitPath(path)
	for _, e := range a.endpoints {
		if e.Method != method || !matches(e.segs, segs) {
			continue
		}
		if ep == nil || moreSpecific(e.segs, ep.segs) {
			ep = e
		}
	}
	if ep == nil {
		return nil, nil, false
	}
	params = map[string]string{}
	for i, s := range ep.segs {
		if name, isParam := paramName(s); isParam {
			params[name] = segs[i]
		}
	}
	return ep, params, true
}

// Methods returns the methods (upper case, sorted) of the endpoints whose
// template matches path: empty means 404 Not Found; non-empty while Match
// fails means 405 Method Not Allowed, with these for the Allow header.
func (a *App) Methods(path string) []string {
	segs := splitPath(path)
	var out []string
	for _, e := range a.endpoints {
		if matches(e.segs, segs) && !slices.Contains(out, e.Method) {
			out = append(out, e.Method)
		}
	}
	slices.Sort(out)
	return out
}

func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func matches(tmpl, segs []string) bool {
	if len(tmpl) != len(segs) {
		return false
	}
	for i, t := range tmpl {
		if _, isParam := paramName(t); isParam {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if t != segs[i] {
			return false
		}
	}
	return true
}

// moreSpecific reports whether template a beats b: at the first segment
// where one is a literal and the other a parameter, a has the literal.
func moreSpecific(a, b []string) bool {
	for i := range a {
		_, ap := paramName(a[i])
		_, bp := paramName(b[i])
		if ap != bp {
			return !ap
		}
	}
	return false
}
