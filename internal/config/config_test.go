package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/config"
	gocose "github.com/veraison/go-cose"
)

func valid() config.Config {
	return config.Config{DataDir: "/tmp/charter", Addr: "127.0.0.1:8000"}
}

func TestValidateDefaults(t *testing.T) {
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CheckpointInterval != 50*time.Millisecond {
		t.Errorf("CheckpointInterval default = %v", c.CheckpointInterval)
	}
	if c.CheckpointMaxTx != 5000 {
		t.Errorf("CheckpointMaxTx default = %d", c.CheckpointMaxTx)
	}
	if c.RegistrationWait != 5*time.Second {
		t.Errorf("RegistrationWait default = %v", c.RegistrationWait)
	}
	if c.Registration.MaxStatementBytes != 1<<20 {
		t.Errorf("MaxStatementBytes default = %d", c.Registration.MaxStatementBytes)
	}
	if c.BatchMaxStatements != 1000 || c.BatchMaxBytes != 32<<20 {
		t.Errorf("BatchMaxStatements, BatchMaxBytes defaults = %d, %d", c.BatchMaxStatements, c.BatchMaxBytes)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel default = %q", c.LogLevel)
	}
	if c.GCPercent != config.DefaultGCPercent {
		t.Errorf("GCPercent default = %d", c.GCPercent)
	}
	if c.RaftLogRetentionBytes != config.DefaultRaftLogRetentionBytes || c.RaftLogRetention != config.DefaultRaftLogRetention || c.SnapshotEntries != 0 {
		t.Errorf("raft log retention defaults = %d bytes, %v, %d entries", c.RaftLogRetentionBytes, c.RaftLogRetention, c.SnapshotEntries)
	}
	if c.SlogLevel().String() != "INFO" {
		t.Errorf("SlogLevel = %v", c.SlogLevel())
	}
	// Validate is idempotent: defaults filled once stay valid.
	d := c
	if err := d.Validate(); err != nil || d.CheckpointInterval != c.CheckpointInterval {
		t.Errorf("second Validate: %v", err)
	}
}

func TestValidateKeepsSetValues(t *testing.T) {
	c := valid()
	c.LogLevel = "debug"
	c.CheckpointInterval = 2 * time.Second
	c.CheckpointMaxTx = 7
	c.RegistrationWait = time.Minute
	c.RaftLogRetention = time.Hour
	c.RaftLogRetentionBytes = 4 << 30
	c.Issuer = "charter:example"
	c.Registration = config.Registration{
		AllowedAlgs:       []string{"ES256", "EdDSA"},
		MaxStatementBytes: 4096,
		TrustedCAs:        []string{strings.Repeat("ab", 32)},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || c.CheckpointInterval != 2*time.Second || c.CheckpointMaxTx != 7 ||
		c.RegistrationWait != time.Minute || c.Registration.MaxStatementBytes != 4096 ||
		c.RaftLogRetention != time.Hour || c.RaftLogRetentionBytes != 4<<30 {
		t.Errorf("Validate changed set values: %+v", c)
	}
	if algs := c.Registration.Algorithms(); len(algs) != 2 || algs[0] != gocose.AlgorithmES256 || algs[1] != gocose.AlgorithmEdDSA {
		t.Errorf("Algorithms = %v", algs)
	}
	if fp := c.Registration.CAFingerprints(); len(fp) != 1 || fp[0][0] != 0xab || fp[0][31] != 0xab {
		t.Errorf("CAFingerprints = %x", fp)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, c := range []struct {
		name  string
		field string // the error must name it
		edit  func(*config.Config)
	}{
		{"empty DataDir", "DataDir", func(c *config.Config) { c.DataDir = "" }},
		{"empty Addr", "Addr", func(c *config.Config) { c.Addr = "" }},
		{"Addr without port", "Addr", func(c *config.Config) { c.Addr = "localhost" }},
		{"Addr with two colons", "Addr", func(c *config.Config) { c.Addr = "a:b:c" }},
		{"bad LogLevel", "LogLevel", func(c *config.Config) { c.LogLevel = "verbose" }},
		{"CheckpointInterval 1h", "CheckpointInterval", func(c *config.Config) { c.CheckpointInterval = time.Hour }},
		{"CheckpointInterval 1µs", "CheckpointInterval", func(c *config.Config) { c.CheckpointInterval = time.Microsecond }},
		{"negative CheckpointInterval", "CheckpointInterval", func(c *config.Config) { c.CheckpointInterval = -time.Second }},
		{"negative RegistrationWait", "RegistrationWait", func(c *config.Config) { c.RegistrationWait = -time.Second }},
		{"RegistrationWait 1h", "RegistrationWait", func(c *config.Config) { c.RegistrationWait = time.Hour }},
		{"RaftLogRetention 1ms", "RaftLogRetention", func(c *config.Config) { c.RaftLogRetention = time.Millisecond }},
		{"negative RaftLogRetention", "RaftLogRetention", func(c *config.Config) { c.RaftLogRetention = -time.Minute }},
		{"RaftLogRetention 2 days", "RaftLogRetention", func(c *config.Config) { c.RaftLogRetention = 48 * time.Hour }},
		{"RaftLogRetentionBytes 4 KiB", "RaftLogRetentionBytes", func(c *config.Config) { c.RaftLogRetentionBytes = 4096 }},
		{"multi-line Issuer", "Issuer", func(c *config.Config) { c.Issuer = "charter:a\ncharter:b" }},
		{"Issuer with CR", "Issuer", func(c *config.Config) { c.Issuer = "charter:a\r" }},
		{"unknown algorithm", "AllowedAlgs", func(c *config.Config) { c.Registration.AllowedAlgs = []string{"ES256", "RS256"} }},
		{"lowercase algorithm", "AllowedAlgs", func(c *config.Config) { c.Registration.AllowedAlgs = []string{"es256"} }},
		{"CA fingerprint too short", "TrustedCAs", func(c *config.Config) { c.Registration.TrustedCAs = []string{strings.Repeat("ab", 31)} }},
		{"CA fingerprint too long", "TrustedCAs", func(c *config.Config) { c.Registration.TrustedCAs = []string{strings.Repeat("ab", 33)} }},
		{"CA fingerprint uppercase", "TrustedCAs", func(c *config.Config) { c.Registration.TrustedCAs = []string{strings.Repeat("AB", 32)} }},
		{"CA fingerprint not hex", "TrustedCAs", func(c *config.Config) { c.Registration.TrustedCAs = []string{strings.Repeat("zz", 32)} }},
		{"MaxStatementBytes 10", "MaxStatementBytes", func(c *config.Config) { c.Registration.MaxStatementBytes = 10 }},
		{"MaxStatementBytes negative", "MaxStatementBytes", func(c *config.Config) { c.Registration.MaxStatementBytes = -1 }},
		{"MaxStatementBytes 65 MiB", "MaxStatementBytes", func(c *config.Config) { c.Registration.MaxStatementBytes = 65 << 20 }},
		{"BatchMaxStatements 10001", "BatchMaxStatements", func(c *config.Config) { c.BatchMaxStatements = 10001 }},
		{"BatchMaxStatements negative", "BatchMaxStatements", func(c *config.Config) { c.BatchMaxStatements = -1 }},
		{"BatchMaxBytes 1 KiB", "BatchMaxBytes", func(c *config.Config) { c.BatchMaxBytes = 1 << 10 }},
		{"BatchMaxBytes 1 GiB", "BatchMaxBytes", func(c *config.Config) { c.BatchMaxBytes = 1 << 30 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", cfg)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %q does not name %s", err, c.field)
			}
		})
	}
}

// TestValidateReportsAll: one Validate names every bad field, so an operator
// fixes a config in one pass.
func TestValidateReportsAll(t *testing.T) {
	c := config.Config{LogLevel: "loud", CheckpointInterval: time.Hour, Issuer: "a\nb", Registration: config.Registration{MaxStatementBytes: 10}}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, f := range []string{"DataDir", "Addr", "LogLevel", "CheckpointInterval", "Issuer", "MaxStatementBytes"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

// TestFileRaftLogRetention: the retention settings survive Write and Load
// under their file names.
func TestFileRaftLogRetention(t *testing.T) {
	c := valid()
	c.RaftLogRetention = 90 * time.Second
	c.RaftLogRetentionBytes = 256 << 20
	path := t.TempDir() + "/node.json"
	if err := config.Write(path, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"raft_log_retention": "1m30s"`) || !strings.Contains(string(b), `"raft_log_retention_bytes": 268435456`) {
		t.Errorf("file lacks the retention settings:\n%s", b)
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.RaftLogRetention != c.RaftLogRetention || got.RaftLogRetentionBytes != c.RaftLogRetentionBytes {
		t.Errorf("loaded %v, %d; wrote %v, %d", got.RaftLogRetention, got.RaftLogRetentionBytes, c.RaftLogRetention, c.RaftLogRetentionBytes)
	}
}

// TestFileBatchBounds: the batch bounds survive the configuration file.
func TestFileBatchBounds(t *testing.T) {
	c := valid()
	c.BatchMaxStatements, c.BatchMaxBytes = 64, 1<<20
	path := t.TempDir() + "/node.json"
	if err := config.Write(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.BatchMaxStatements != 64 || got.BatchMaxBytes != 1<<20 {
		t.Errorf("loaded %d, %d; wrote 64, %d", got.BatchMaxStatements, got.BatchMaxBytes, 1<<20)
	}
}
