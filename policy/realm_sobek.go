package policy

import (
	"reflect"
	"unsafe"

	"github.com/grafana/sobek"
)

// forgetModules makes rt forget every module instance it has evaluated,
// so that evaluating a module record again runs its top-level code anew
// with new bindings: what a fresh runtime would do, at the cost of none
// of its built-ins.
//
// sobek keeps a runtime's module instances, namespace objects,
// import.meta objects and evaluation state in unexported fields and has
// no API to drop them (a runtime is meant to evaluate a module once).
// These four fields are all the per-runtime module state it has; they are
// set here through reflection. moduleFieldsOK checks at start-up that they
// exist with the expected kinds, and realms are not used otherwise (every
// call then gets a fresh runtime, as before realms): a sobek upgrade that
// renames them costs speed, not isolation. TestRealmRerunsModuleCode
// proves the reset works on the pinned version.
func forgetModules(rt *sobek.Runtime) {
	v := reflect.ValueOf(rt).Elem()
	for _, name := range moduleFields {
		f := v.FieldByName(name)
		reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetZero()
	}
}

var moduleFields = [...]string{"modules", "moduleNamespaces", "importMetas", "evaluationState"}

// moduleFieldsOK reports whether sobek's Runtime has the fields
// forgetModules resets, each a map or a pointer (whose zero value sobek
// treats as "nothing evaluated yet").
var moduleFieldsOK = func() bool {
	t := reflect.TypeFor[sobek.Runtime]()
	for _, name := range moduleFields {
		f, ok := t.FieldByName(name)
		if !ok || (f.Type.Kind() != reflect.Map && f.Type.Kind() != reflect.Pointer) {
			return false
		}
	}
	return true
}()
