package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/durable"
)

// File is a node's configuration file (JSON), as `charterd start --config`
// reads and `charterd cluster` writes it. Durations are Go duration strings
// ("50ms"); omitted fields take Config's defaults.
type File struct {
	NodeID                uint64            `json:"node_id"`
	DataDir               string            `json:"data_dir"`
	Addr                  string            `json:"addr"`
	Issuer                string            `json:"issuer,omitempty"`
	Development           bool              `json:"development,omitempty"`
	OpenByVote            bool              `json:"open_by_vote,omitempty"`
	Joined                bool              `json:"joined,omitempty"`
	PeerDial              map[string]string `json:"peer_dial,omitempty"`
	Members               []string          `json:"members,omitempty"`
	Constitution          string            `json:"constitution,omitempty"`
	Platform              string            `json:"platform,omitempty"`
	SealKeyFile           string            `json:"seal_key_file,omitempty"`
	Attestation           Attestation       `json:"attestation,omitzero"`
	LogLevel              string            `json:"log_level,omitempty"`
	CheckpointInterval    string            `json:"checkpoint_interval,omitempty"`
	CheckpointMaxTx       uint64            `json:"checkpoint_max_tx,omitempty"`
	RegistrationWait      string            `json:"registration_wait,omitempty"`
	SnapshotEntries       uint64            `json:"snapshot_entries,omitempty"`
	RaftLogRetention      string            `json:"raft_log_retention,omitempty"`
	RaftLogRetentionBytes uint64            `json:"raft_log_retention_bytes,omitempty"`
	GCPercent             int               `json:"gc_percent,omitempty"`
	BatchMaxStatements    int               `json:"batch_max_statements,omitempty"`
	BatchMaxBytes         int               `json:"batch_max_bytes,omitempty"`
	LedgerChunkBytes      int64             `json:"ledger_chunk_bytes,omitempty"`
	LedgerChunkTxs        uint64            `json:"ledger_chunk_transactions,omitempty"`
	Registration          Registration      `json:"registration"`
}

// Load reads, parses and validates a configuration file. Unknown fields
// are errors, so a misspelt setting is not silently ignored.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := f.Config()
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Config converts the file to a Config (not yet validated).
func (f *File) Config() (Config, error) {
	c := Config{
		NodeID: f.NodeID, DataDir: f.DataDir, Addr: f.Addr, Issuer: f.Issuer, LogLevel: f.LogLevel, Join: f.Joined,
		Members: f.Members, Constitution: f.Constitution, Platform: f.Platform, SealKeyFile: f.SealKeyFile, Attestation: f.Attestation,
		Development: f.Development, OpenByVote: f.OpenByVote, CheckpointMaxTx: f.CheckpointMaxTx, SnapshotEntries: f.SnapshotEntries, RaftLogRetentionBytes: f.RaftLogRetentionBytes, Registration: f.Registration, GCPercent: f.GCPercent,
		LedgerChunkBytes: f.LedgerChunkBytes, LedgerChunkTransactions: f.LedgerChunkTxs,
		BatchMaxStatements: f.BatchMaxStatements, BatchMaxBytes: f.BatchMaxBytes,
	}
	var err error
	if c.CheckpointInterval, err = parseDuration("checkpoint_interval", f.CheckpointInterval); err != nil {
		return c, err
	}
	if c.RegistrationWait, err = parseDuration("registration_wait", f.RegistrationWait); err != nil {
		return c, err
	}
	if c.RaftLogRetention, err = parseDuration("raft_log_retention", f.RaftLogRetention); err != nil {
		return c, err
	}
	if c.PeerDial, err = idMap("peer_dial", f.PeerDial); err != nil {
		return c, err
	}
	return c, nil
}

// FileFor is the File that Load turns back into c.
func FileFor(c Config) File {
	f := File{
		NodeID: c.NodeID, DataDir: c.DataDir, Addr: c.Addr, Issuer: c.Issuer, LogLevel: c.LogLevel, Joined: c.Join,
		Members: c.Members, Constitution: c.Constitution, Platform: c.Platform, SealKeyFile: c.SealKeyFile, Attestation: c.Attestation,
		Development: c.Development, OpenByVote: c.OpenByVote, CheckpointMaxTx: c.CheckpointMaxTx, SnapshotEntries: c.SnapshotEntries, RaftLogRetentionBytes: c.RaftLogRetentionBytes, Registration: c.Registration, GCPercent: c.GCPercent,
		LedgerChunkBytes: c.LedgerChunkBytes, LedgerChunkTxs: c.LedgerChunkTransactions,
		BatchMaxStatements: c.BatchMaxStatements, BatchMaxBytes: c.BatchMaxBytes,
	}
	if c.CheckpointInterval != 0 {
		f.CheckpointInterval = c.CheckpointInterval.String()
	}
	if c.RegistrationWait != 0 {
		f.RegistrationWait = c.RegistrationWait.String()
	}
	if c.RaftLogRetention != 0 {
		f.RaftLogRetention = c.RaftLogRetention.String()
	}
	f.PeerDial = stringMap(c.PeerDial)
	return f
}

func idMap(field string, m map[string]string) (map[uint64]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := map[uint64]string{}
	for k, v := range m {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q is not a node id", field, k)
		}
		out[id] = v
	}
	return out, nil
}

func stringMap(m map[uint64]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := map[string]string{}
	for id, u := range m {
		out[strconv.FormatUint(id, 10)] = u
	}
	return out
}

// Write writes c to path as a configuration file.
func Write(path string, c Config) error {
	b, err := json.MarshalIndent(FileFor(c), "", "  ")
	if err != nil {
		return err
	}
	// `charterd join` rewrites the file with the node's id: a crash must
	// leave the old file or the new one, not a torn one.
	return durable.WriteFile(path, append(b, '\n'), 0o644)
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return d, nil
}
