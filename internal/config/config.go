// Package config holds a node's configuration: every field with its meaning
// and default, and one Validate that checks them all and names the field at
// fault.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	gocose "github.com/veraison/go-cose"
)

// Config configures one charterd node.
type Config struct {
	// NodeID is this node's raft id, unique in the network and never reused.
	// Default 1 (a single-node network).
	NodeID uint64
	// PeerDial overrides where this node sends to a peer (raft id to base
	// URL), without changing the peer's recorded address: for a proxy in
	// front of a peer, as the partition tests use. Optional.
	PeerDial map[uint64]string
	// Development marks a new network (charterd create) as a development
	// network: its nodes' virtual platform is approved at creation, so
	// nodes on it may join without hardware attestation. /node/network and
	// the genesis transaction say so. `charterd dev` and `charterd cluster`
	// create development networks; on any other network virtual evidence
	// is refused unless members approve it (add_virtual_measurement).
	// Creation only.
	Development bool
	// OpenByVote keeps a new network whose node generated its own member
	// (no Members) Opening until the member votes
	// transition_service_to_open, as a consortium's network is: nodes that
	// join before then are trusted on their attestation. `charterd
	// cluster` uses it to join its nodes first. Creation only.
	OpenByVote bool
	// Members are the PEM certificate files of a new network's members; they
	// start Accepted and become Active by acknowledging the state digest.
	// Empty: the node's generated member0, active at once (dev networks).
	Members []string
	// Constitution is a JS file with a new network's constitution; empty:
	// the default (a strict majority of active members).
	Constitution string
	// Platform is where the node attests: "virtual" (default; no hardware
	// claims, for development and CI) or "sev-snp" (an AMD SEV-SNP
	// confidential VM, through go-sev-guest).
	Platform string
	// SealKeyFile is the key that seals the node's secrets at rest on the
	// virtual platform (64 hex digits, mode 0600): it must be outside
	// DataDir, so that a copy of the data directory holds no secret in
	// clear. Default DataDir + ".seal.key", created with the secrets. On
	// sev-snp the firmware derives the sealing key and this must be empty.
	SealKeyFile string
	// Attestation is how this node verifies the evidence of nodes that join
	// while it leads. Which measurements and host data are accepted is not
	// here: governance decides that (public:ccf.gov.nodes.*).
	Attestation Attestation
	// Join marks a node that joined an existing network (charterd join):
	// it never bootstraps a network of its own, even with an empty store.
	Join bool
	// RaftLogRetentionBytes bounds the raft log the leader keeps for
	// followers that lag or are down, in bytes of entries: a follower that
	// needs entries beyond it is sent a snapshot (a full image of the
	// ledger) instead. Default 1 GiB (DefaultRaftLogRetentionBytes).
	RaftLogRetentionBytes uint64
	// RaftLogRetention bounds the same log by age: entries older than this
	// are not kept for a follower. Default 10m: a follower down for less
	// (and within RaftLogRetentionBytes) catches up from the log. Within
	// [1s, 24h].
	RaftLogRetention time.Duration
	// SnapshotEntries, if set, also bounds that log by count: a follower
	// more than this many raft entries behind is sent a snapshot. Default 0:
	// no bound by count (tests set it low to force snapshots).
	SnapshotEntries uint64
	// LedgerChunkBytes and LedgerChunkTransactions bound a ledger chunk
	// file (DataDir/ledger): a chunk is completed at whichever comes
	// first. Defaults 64 MiB and 100,000.
	LedgerChunkBytes        int64
	LedgerChunkTransactions uint64
	// DataDir holds the node's store and identity files. Required.
	DataDir string
	// Addr is the HTTPS listen address, host:port; port 0 picks a free port
	// (written to DataDir/node.url once listening). Required.
	Addr string
	// Issuer names the service in receipts (CWT iss) and is the origin line
	// of its signed-note checkpoints. Fixed at network creation; default
	// "charter:" + the listen address at creation.
	Issuer string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// CheckpointInterval is the longest a transaction waits for a
	// checkpoint. Default 50ms.
	CheckpointInterval time.Duration
	// CheckpointMaxTx makes a checkpoint as soon as this many transactions
	// are uncovered. Default 5000.
	CheckpointMaxTx uint64
	// RegistrationWait is how long POST /entries waits for the receipt
	// before answering 303. Default 5s.
	RegistrationWait time.Duration
	// BatchMaxStatements bounds the signed statements of one POST
	// /entries/batch request. Default 1000 (DefaultBatchMaxStatements);
	// within [1, 10000].
	BatchMaxStatements int
	// BatchMaxBytes bounds the body of one POST /entries/batch request,
	// read before it is parsed. Default 32 MiB (DefaultBatchMaxBytes);
	// within [64 KiB, 256 MiB].
	BatchMaxBytes int
	// GCPercent is the Go garbage collector's target (GOGC) for the node
	// process: 0 means DefaultGCPercent, negative turns the collector off
	// (then set GOMEMLIMIT). The GOGC environment variable, if set, wins.
	// A node allocates a lot per request (JS interpreters, CBOR, TLS)
	// and keeps little, so collecting less often trades a little memory
	// for much CPU: see spec/operations.md.
	GCPercent int
	// Registration is the registration configuration of a new network. An
	// existing network keeps the one recorded in its genesis transaction.
	Registration Registration
}

// Attestation holds the operator's settings for verifying SEV-SNP evidence.
type Attestation struct {
	// AMDRootsFile replaces AMD's embedded root certificates with the ASK
	// and ARK in this file (PEM, ASK first: the format of AMD KDS's
	// cert_chain). Optional; for test networks and new product lines.
	AMDRootsFile string `json:"amd_roots_file,omitempty"`
	// AMDProductLine is the product line of AMDRootsFile (Milan, Genoa,
	// Turin). Required with AMDRootsFile.
	AMDProductLine string `json:"amd_product_line,omitempty"`
	// CertCacheDir holds VCEK/VLEK certificates for reports whose
	// certificate table lacks them. Optional.
	CertCacheDir string `json:"cert_cache_dir,omitempty"`
	// AllowNetwork lets verification fetch missing certificates and
	// revocation lists from AMD's KDS. Default off: nothing leaves the node.
	AllowNetwork bool `json:"allow_network,omitempty"`
	// MinTCB is the minimum reported TCB (go-sev-guest's kds.TCBVersion as
	// a uint64). Default 0: no minimum.
	MinTCB uint64 `json:"min_tcb,omitempty"`
}

// Raft log retention defaults (see RaftLogRetentionBytes, RaftLogRetention).
const (
	DefaultRaftLogRetentionBytes = 1 << 30
	DefaultRaftLogRetention      = 10 * time.Minute
)

// Batch registration bounds (BatchMaxStatements, BatchMaxBytes): their
// defaults and the largest statement count (the batch decoder's bound).
const (
	DefaultBatchMaxStatements = 1000
	MaxBatchStatements        = 10000
	DefaultBatchMaxBytes      = 32 << 20
)

// DefaultGCPercent is GCPercent's default. Measured with make bench-app on
// one node: GOGC 100 → 1,928 transfers/s at 179 MB RSS, 400 → 2,734/s at
// 254 MB.
const DefaultGCPercent = 400

// Registration is what the service accepts.
type Registration struct {
	// AllowedAlgs are COSE algorithm names; empty means all supported
	// (ES256, ES384, ES512, PS256, PS384, PS512, EdDSA).
	AllowedAlgs []string `cbor:"1,keyasint,omitempty" json:"allowed_algorithms,omitempty"`
	// MaxStatementBytes bounds a signed statement. Default 1 MiB.
	MaxStatementBytes int `cbor:"2,keyasint" json:"max_statement_bytes"`
	// TrustedCAs are hex SHA-256 fingerprints of root certificates an
	// x5chain may end in; empty means any chain that verifies (dev default).
	TrustedCAs []string `cbor:"3,keyasint,omitempty" json:"trusted_ca_fingerprints,omitempty"`
}

var algNames = map[string]gocose.Algorithm{
	"ES256": gocose.AlgorithmES256, "ES384": gocose.AlgorithmES384, "ES512": gocose.AlgorithmES512,
	"PS256": gocose.AlgorithmPS256, "PS384": gocose.AlgorithmPS384, "PS512": gocose.AlgorithmPS512,
	"EdDSA": gocose.AlgorithmEdDSA,
}

// Algorithms returns the allowed algorithms as COSE values.
func (r Registration) Algorithms() []gocose.Algorithm {
	out := make([]gocose.Algorithm, 0, len(r.AllowedAlgs))
	for _, n := range r.AllowedAlgs {
		out = append(out, algNames[n])
	}
	return out
}

// CAFingerprints returns the trusted CA fingerprints as bytes.
func (r Registration) CAFingerprints() [][32]byte {
	out := make([][32]byte, 0, len(r.TrustedCAs))
	for _, h := range r.TrustedCAs {
		var f [32]byte
		b, _ := hex.DecodeString(h)
		copy(f[:], b)
		out = append(out, f)
	}
	return out
}

// Validate checks r and fills its defaults.
func (r *Registration) Validate() error {
	if r.MaxStatementBytes == 0 {
		r.MaxStatementBytes = 1 << 20
	}
	if r.MaxStatementBytes < 64 || r.MaxStatementBytes > 64<<20 {
		return fmt.Errorf("config: Registration.MaxStatementBytes %d is outside [64, 64 MiB]", r.MaxStatementBytes)
	}
	for _, a := range r.AllowedAlgs {
		if _, ok := algNames[a]; !ok {
			return fmt.Errorf("config: Registration.AllowedAlgs: unknown algorithm %q (want ES256, ES384, ES512, PS256, PS384, PS512 or EdDSA)", a)
		}
	}
	for i, h := range r.TrustedCAs {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 || strings.ToLower(h) != h {
			return fmt.Errorf("config: Registration.TrustedCAs[%d] %q is not 64 lowercase hex digits (a SHA-256 fingerprint)", i, h)
		}
	}
	return nil
}

// Validate checks c and fills its defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("config: DataDir is required"))
	}
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	for id, u := range c.PeerDial {
		if p, err := url.Parse(u); id == 0 || err != nil || p.Scheme != "https" || p.Host == "" || p.Path != "" {
			errs = append(errs, fmt.Errorf("config: PeerDial[%d] = %q: want a positive id and https://HOST:PORT", id, u))
		}
	}
	switch c.Platform {
	case "", "virtual", "sev-snp":
	default:
		errs = append(errs, fmt.Errorf("config: Platform %q: want virtual or sev-snp", c.Platform))
	}
	switch {
	case c.Platform == "sev-snp" && c.SealKeyFile != "":
		errs = append(errs, errors.New("config: SealKeyFile is for the virtual platform; on sev-snp the firmware derives the sealing key"))
	case c.Platform != "sev-snp" && c.DataDir != "":
		if c.SealKeyFile == "" {
			c.SealKeyFile = filepath.Clean(c.DataDir) + ".seal.key"
		}
		if inside(c.SealKeyFile, c.DataDir) {
			errs = append(errs, fmt.Errorf("config: SealKeyFile %q is inside DataDir: a copy of the data directory would hold the key to its secrets", c.SealKeyFile))
		}
	}
	if (c.Attestation.AMDRootsFile == "") != (c.Attestation.AMDProductLine == "") {
		errs = append(errs, errors.New("config: Attestation.AMDRootsFile and AMDProductLine go together"))
	}
	if c.GCPercent == 0 {
		c.GCPercent = DefaultGCPercent
	}
	if c.RaftLogRetentionBytes == 0 {
		c.RaftLogRetentionBytes = DefaultRaftLogRetentionBytes
	}
	if c.RaftLogRetentionBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("config: RaftLogRetentionBytes %d is below 1 MiB", c.RaftLogRetentionBytes))
	}
	if c.LedgerChunkBytes == 0 {
		c.LedgerChunkBytes = 64 << 20
	}
	if c.LedgerChunkBytes < 4<<10 || c.LedgerChunkBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("config: LedgerChunkBytes %d is outside [4 KiB, 1 GiB]", c.LedgerChunkBytes))
	}
	if c.LedgerChunkTransactions == 0 {
		c.LedgerChunkTransactions = 100_000
	}
	if c.RaftLogRetention == 0 {
		c.RaftLogRetention = DefaultRaftLogRetention
	}
	if c.RaftLogRetention < time.Second || c.RaftLogRetention > 24*time.Hour {
		errs = append(errs, fmt.Errorf("config: RaftLogRetention %v is outside [1s, 24h]", c.RaftLogRetention))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("config: Addr %q is not host:port: %v", c.Addr, err))
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("config: LogLevel %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 50 * time.Millisecond
	}
	if c.CheckpointInterval < time.Millisecond || c.CheckpointInterval > time.Minute {
		errs = append(errs, fmt.Errorf("config: CheckpointInterval %v is outside [1ms, 1m]", c.CheckpointInterval))
	}
	if c.CheckpointMaxTx == 0 {
		c.CheckpointMaxTx = 5000
	}
	if c.RegistrationWait == 0 {
		c.RegistrationWait = 5 * time.Second
	}
	if c.RegistrationWait < 0 || c.RegistrationWait > 5*time.Minute {
		errs = append(errs, fmt.Errorf("config: RegistrationWait %v is outside [0, 5m]", c.RegistrationWait))
	}
	if c.BatchMaxStatements == 0 {
		c.BatchMaxStatements = DefaultBatchMaxStatements
	}
	if c.BatchMaxStatements < 1 || c.BatchMaxStatements > MaxBatchStatements {
		errs = append(errs, fmt.Errorf("config: BatchMaxStatements %d is outside [1, %d]", c.BatchMaxStatements, MaxBatchStatements))
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if c.BatchMaxBytes < 64<<10 || c.BatchMaxBytes > 256<<20 {
		errs = append(errs, fmt.Errorf("config: BatchMaxBytes %d is outside [64 KiB, 256 MiB]", c.BatchMaxBytes))
	}
	if strings.ContainsAny(c.Issuer, "\n\r") {
		errs = append(errs, errors.New("config: Issuer must be one line"))
	}
	if err := c.Registration.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SlogLevel returns the configured log level.
func (c *Config) SlogLevel() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl
}

// inside reports whether path is dir or below it (lexically, after making
// both absolute).
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "..")
}
