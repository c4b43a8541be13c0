package policy

import "testing"

// Realms reset sobek's unexported module state by reflection. If a sobek
// upgrade renames or retypes those fields, realms switch off (every call
// gets a fresh runtime): still isolated, but several times slower, and
// nothing else would tell. This test makes the upgrade fail loudly instead.
func TestModuleFieldsPresent(t *testing.T) {
	if !moduleFieldsOK {
		t.Fatalf("sobek's Runtime no longer has the module fields %v as maps or pointers: forgetModules must follow sobek (realm_sobek.go)", moduleFields)
	}
}
