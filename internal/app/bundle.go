package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Bundle limits. A bundle is a governance payload held in memory on every
// node, so it is bounded in total and in each part.
const (
	MaxBundleBytes    = 16 << 20 // the whole JSON document
	MaxModules        = 1024
	MaxModuleNameLen  = 256
	MaxEndpoints      = 1024
	MaxURLTemplateLen = 1024
)

// Bundle is a CCF application bundle: `{"metadata": {"endpoints": ...},
// "modules": [{"name", "module"}]}` (CCF doc/build_apps/js_app_bundle.rst).
type Bundle struct {
	Metadata Metadata `json:"metadata"`
	Modules  []Module `json:"modules"`
}

// Metadata is the content of app.json.
type Metadata struct {
	// Endpoints maps a URL template ("/balance/{account_name}", no /app
	// prefix) to lower-case HTTP methods to their descriptions.
	Endpoints map[string]map[string]*EndpointInfo `json:"endpoints"`
}

// Module is one ES module of a bundle. Name is a posix path relative to the
// bundle root ("endpoints/banking.js"); modules import each other by
// relative specifiers resolved against it.
type Module struct {
	Name   string `json:"name"`
	Module string `json:"module"`
}

// EndpointInfo describes one endpoint, as CCF's app.json does.
type EndpointInfo struct {
	JSModule            string          `json:"js_module"`
	JSFunction          string          `json:"js_function"`
	AuthnPolicies       []AuthnPolicy   `json:"authn_policies"`
	ForwardingRequired  string          `json:"forwarding_required"`
	RedirectionStrategy string          `json:"redirection_strategy,omitempty"`
	Mode                string          `json:"mode"`
	OpenAPI             json.RawMessage `json:"openapi,omitempty"`
	OpenAPIHidden       bool            `json:"openapi_hidden,omitempty"`
	// InterpreterReuse is accepted (CCF ≥ 4 allows it) and kept, but not
	// honoured: every call runs in a fresh interpreter. See doc.go.
	InterpreterReuse *InterpreterReuse `json:"interpreter_reuse,omitempty"`
	// Extra keeps keys CCF does not define (the data-reconciliation sample
	// has "summary" and "description"); CCF ignores them, and so does
	// Charter, but they survive a re-marshal.
	Extra map[string]json.RawMessage `json:"-"`
}

type endpointInfoFields EndpointInfo // without the methods

var endpointKeys = map[string]bool{"js_module": true, "js_function": true, "authn_policies": true,
	"forwarding_required": true, "redirection_strategy": true, "mode": true, "openapi": true,
	"openapi_hidden": true, "interpreter_reuse": true}

// UnmarshalJSON decodes the known fields strictly (types, unknown fields
// inside interpreter_reuse) and keeps unknown top-level keys in Extra.
func (e *EndpointInfo) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	if all == nil {
		return errors.New("endpoint description must be an object")
	}
	known := make(map[string]json.RawMessage, len(all))
	var extra map[string]json.RawMessage
	for k, v := range all {
		if endpointKeys[k] {
			known[k] = v
		} else {
			if extra == nil {
				extra = map[string]json.RawMessage{}
			}
			extra[k] = v
		}
	}
	kb, err := json.Marshal(known)
	if err != nil {
		return err
	}
	var f endpointInfoFields
	if err := strictUnmarshal(kb, &f); err != nil {
		return err
	}
	*e = EndpointInfo(f)
	e.Extra = extra
	return nil
}

// MarshalJSON writes the known fields and Extra.
func (e EndpointInfo) MarshalJSON() ([]byte, error) {
	kb, err := json.Marshal(endpointInfoFields(e))
	if err != nil || len(e.Extra) == 0 {
		return kb, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(kb, &all); err != nil {
		return nil, err
	}
	for k, v := range e.Extra {
		if _, dup := all[k]; !dup {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// InterpreterReuse is CCF's `{"key": "..."}` hint that endpoints sharing a
// key may share an interpreter.
type InterpreterReuse struct {
	Key string `json:"key"`
}

// Endpoint modes, forwarding and redirection values.
const (
	ModeReadWrite  = "readwrite"
	ModeReadOnly   = "readonly"
	ModeHistorical = "historical"

	ForwardAlways    = "always"
	ForwardSometimes = "sometimes"
	ForwardNever     = "never"

	RedirectNone      = "none"
	RedirectToPrimary = "to_primary"
	RedirectToBackup  = "to_backup"
)

// knownMethods are the lower-case methods an endpoint may declare.
var knownMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true,
	"patch": true, "head": true, "options": true}

// ParseBundle strictly decodes and validates a bundle: unknown fields,
// duplicate module names, unknown methods, modes, policies and bad module
// names are refused, with an error naming the endpoint, module or field.
// It does not compile JavaScript; Load does.
func ParseBundle(raw []byte) (*Bundle, error) {
	if len(raw) > MaxBundleBytes {
		return nil, fmt.Errorf("app: bundle of %d bytes exceeds %d", len(raw), MaxBundleBytes)
	}
	var b Bundle
	if err := strictUnmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("app: bundle: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Validate checks everything ParseBundle checks after decoding; use it on
// a Bundle built in Go (BuildBundle does).
func (b *Bundle) Validate() error {
	if b.Metadata.Endpoints == nil {
		return errors.New("app: bundle: metadata.endpoints is missing")
	}
	if len(b.Modules) > MaxModules {
		return fmt.Errorf("app: bundle: %d modules, at most %d", len(b.Modules), MaxModules)
	}
	names := make(map[string]bool, len(b.Modules))
	for i, m := range b.Modules {
		if err := checkModuleName(m.Name); err != nil {
			return fmt.Errorf("app: bundle: modules[%d] %q: %w", i, m.Name, err)
		}
		if names[m.Name] {
			return fmt.Errorf("app: bundle: modules[%d]: duplicate module name %q", i, m.Name)
		}
		names[m.Name] = true
	}
	n := 0
	for _, url := range sortedKeys(b.Metadata.Endpoints) {
		if err := checkTemplate(url); err != nil {
			return fmt.Errorf("app: bundle: endpoint %q: %w", url, err)
		}
		methods := b.Metadata.Endpoints[url]
		if len(methods) == 0 {
			return fmt.Errorf("app: bundle: endpoint %q: no methods", url)
		}
		for _, method := range sortedKeys(methods) {
			n++
			name := strings.ToUpper(method) + " " + url
			if !knownMethods[method] {
				return fmt.Errorf("app: bundle: endpoint %q: unknown method %q (methods are lower-case: %s)", name, method, "get, put, post, delete, patch, head, options")
			}
			info := methods[method]
			if info == nil {
				return fmt.Errorf("app: bundle: endpoint %q: null endpoint description", name)
			}
			if err := info.validate(names); err != nil {
				return fmt.Errorf("app: bundle: endpoint %q: %w", name, err)
			}
		}
	}
	if n > MaxEndpoints {
		return fmt.Errorf("app: bundle: %d endpoints, at most %d", n, MaxEndpoints)
	}
	return nil
}

func (e *EndpointInfo) validate(modules map[string]bool) error {
	if e.JSModule == "" {
		return errors.New("js_module is missing")
	}
	if !modules[e.JSModule] {
		return fmt.Errorf("js_module %q is not a module of the bundle", e.JSModule)
	}
	if e.JSFunction == "" {
		return errors.New("js_function is missing")
	}
	switch e.Mode {
	case ModeReadWrite, ModeReadOnly, ModeHistorical:
	default:
		return fmt.Errorf("mode %q: want readwrite, readonly or historical", e.Mode)
	}
	switch e.ForwardingRequired {
	case ForwardAlways, ForwardSometimes, ForwardNever:
	default:
		return fmt.Errorf("forwarding_required %q: want always, sometimes or never", e.ForwardingRequired)
	}
	switch e.RedirectionStrategy {
	case "", RedirectNone, RedirectToPrimary, RedirectToBackup:
	default:
		return fmt.Errorf("redirection_strategy %q: want none, to_primary or to_backup", e.RedirectionStrategy)
	}
	if e.AuthnPolicies == nil {
		return errors.New("authn_policies is missing (an empty list means unauthenticated)")
	}
	if len(e.OpenAPI) > 0 {
		t := bytes.TrimSpace(e.OpenAPI)
		if len(t) == 0 || (t[0] != '{' && !bytes.Equal(t, []byte("null"))) {
			return errors.New("openapi must be an object")
		}
	}
	return nil
}

// checkModuleName accepts posix relative paths without empty, "." or ".."
// segments: what CCF's bundles contain and what relative imports resolve to.
func checkModuleName(n string) error {
	if n == "" {
		return errors.New("empty module name")
	}
	if len(n) > MaxModuleNameLen {
		return fmt.Errorf("module name longer than %d bytes", MaxModuleNameLen)
	}
	if strings.HasPrefix(n, "/") {
		return errors.New("module names are relative (no leading /)")
	}
	for _, r := range n {
		if r == '\\' || r < 0x20 || r == 0x7f {
			return errors.New("module names use forward slashes and printable characters")
		}
	}
	if path.Clean(n) != n {
		return errors.New("module name is not a clean path (no empty, . or .. segments)")
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == ".." || seg == "." {
			return errors.New("module name has a . or .. segment")
		}
	}
	return nil
}

// checkTemplate accepts "/seg/{param}/..." templates: a leading slash,
// non-empty segments, parameters that fill a whole segment, no duplicate
// parameter names.
func checkTemplate(url string) error {
	if len(url) > MaxURLTemplateLen {
		return fmt.Errorf("URL template longer than %d bytes", MaxURLTemplateLen)
	}
	if !strings.HasPrefix(url, "/") {
		return errors.New("URL template must start with /")
	}
	if strings.ContainsAny(url, "?#") {
		return errors.New("URL template must not contain ? or #")
	}
	if url == "/" {
		return nil
	}
	seen := map[string]bool{}
	for _, seg := range strings.Split(url[1:], "/") {
		if seg == "" {
			return errors.New("URL template has an empty segment")
		}
		if p, ok := paramName(seg); ok {
			if p == "" || strings.ContainsAny(p, "{}") {
				return fmt.Errorf("bad parameter segment %q", seg)
			}
			if seen[p] {
				return fmt.Errorf("parameter %q appears twice", p)
			}
			seen[p] = true
		} else if strings.ContainsAny(seg, "{}") {
			return fmt.Errorf("segment %q: a parameter must fill the whole segment", seg)
		}
	}
	return nil
}

func paramName(seg string) (string, bool) {
	if len(seg) >= 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// strictUnmarshal decodes one JSON value, refusing unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
