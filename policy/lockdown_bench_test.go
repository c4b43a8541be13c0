package policy

import "testing"

// BenchmarkSandboxRuntime measures building one fresh locked-down runtime,
// which every JS app request pays before any module code runs.
func BenchmarkSandboxRuntime(b *testing.B) {
	p := &Program{limits: Limits{}.withDefaults()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.newSandboxRuntime(); err != nil {
			b.Fatal(err)
		}
	}
}
