package fault

import "testing"

func TestCheck(t *testing.T) {
	defer func(old string) { crashAt = old }(crashAt)
	for _, tc := range []struct {
		env string
		ok  bool
	}{{"", true}, {SnapshotMarked, true}, {StorageWriteError, true}, {"snapshot-marks", false}} {
		crashAt = tc.env
		if err := Check(); (err == nil) != tc.ok {
			t.Errorf("%s=%q: %v, want ok %v", EnvCrashAt, tc.env, err, tc.ok)
		}
	}
}
