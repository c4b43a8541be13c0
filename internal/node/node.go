// Package node wires a Charter node together (store, ledger, raft, service
// identity, the HTTP edge) and hands the jobs below it (ledgersecrets,
// restore, membership, join) their keys, state and clients; and it does
// startup recovery (replay the raft log, check the tree against the newest
// checkpoint, create the network if there is none).
package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/pause"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/apphost"
	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/httpapi"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/internal/ledgersecrets"
	"github.com/charterlog/charter/internal/membership"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/restore"
	"github.com/charterlog/charter/internal/seal"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/registry"
	"github.com/google/go-sev-guest/verify/trust"
	"go.etcd.io/raft/v3"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"
)

// Node is a running charterd.
type Node struct {
	cfg    config.Config
	log    *slog.Logger
	st     *store.Store
	ledger *ledger.Ledger
	// files writes the ledger chunk files, where the store keeps record
	// bodies once synced (store/bodies.go); writeLedgerFiles drives it.
	files    *ledgerfiles.Writer
	raft     *replication.Node
	id       *identity.Identity
	issuer   string
	listener net.Listener
	genesis  *genesis.Genesis
	serving  chan struct{}

	// ready is set once recovery is done and the service API may serve.
	ready atomic.Bool
	// tlsCert is the node's current certificate: client-only from joining
	// until the node is trusted, then a server certificate it issues itself.
	tlsCert atomic.Pointer[tls.Certificate]
	host    string // the host the node listens on, for its certificate
	nodeKey *ecdsa.PrivateKey
	// sealer seals the secrets this node keeps on disk (identity.OpenSealer).
	sealer    *seal.Sealer
	evidence  *attest.Evidence
	transport *peer.HTTPTransport

	// amdRoots replace AMD's embedded roots (Config.Attestation); nil: the
	// embedded ones.
	amdRoots map[string][]*trust.AMDRootCerts

	// full is the identity with the service's secrets, once this node holds
	// them (at start, or when the network releases them to it).
	full atomic.Pointer[identity.Identity]
	// peers says who a TLS key is, and reaches the other nodes accepting
	// only their own keys.
	peers *peer.Directory
	// backfill fetches the history a state image left out.
	backfill *peer.Backfiller
	// keeper keeps the ledger secret versions after the first and, on the
	// primary, the recovery sharing; restore records a recovery from a
	// lost network's ledger files.
	keeper  *ledgersecrets.Keeper
	restore *restore.Recorder
}

// New nodes may join at joinsPerSecond, joinBurst at once: enough for an
// operator adding nodes, and a flood of joins costs the network little.
const (
	joinsPerSecond = 2
	joinBurst      = 4
)

// Mode says what Open may do with the data directory.
type Mode int

const (
	// Reopen runs a node whose data directory holds a network's store (or
	// a node that joined one, cfg.Join), and refuses one that does not: a
	// mistyped path must never create a second network under the same name.
	Reopen Mode = iota
	// Create creates a new network (its service identity and genesis) in a
	// data directory that holds none, and refuses one that does. Only the
	// network's first node is created; every other node joins.
	Create
	// CreateOrReopen is `charterd dev`'s: reopen the development network in
	// the data directory, or create one there.
	CreateOrReopen
	// Recovered is for a data directory into which restore.Import imported
	// a previous network's ledger: Open makes a new service identity and a
	// new single-node raft over the imported ledger, and Run records the
	// recovery (log.TxRecovery) before anything else.
	Recovered
)

// ErrNoNetwork is Open's error in Reopen mode for a data directory that
// holds no network.
var ErrNoNetwork = errors.New("no network in this data directory")

// ErrNetworkExists is Open's error in Create mode for a data directory
// that already holds one; `charterd recover` refuses one with it too.
var ErrNetworkExists = restore.ErrNetworkExists

// Open prepares a node: it validates cfg, checks the data directory against
// mode, listens, opens the store and loads or creates the service identity.
// Nothing is served until Run.
func Open(cfg config.Config, mode Mode, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	storeDir := filepath.Join(cfg.DataDir, "store")
	if _, err := os.Stat(storeDir); errors.Is(err, fs.ErrNotExist) && mode == Reopen && !cfg.Join {
		return nil, fmt.Errorf("%w: %s has no store (%s); create a network with `charterd create`, or add a node with `charterd join`", ErrNoNetwork, cfg.DataDir, storeDir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	n := &Node{cfg: cfg, log: logger, listener: ln, serving: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()
	n.st, err = store.Open(storeDir, logger)
	if err != nil {
		return nil, err
	}
	// The ledger files before anything reads a record or raft runs: the
	// store reads the bodies of synced records from them, and keeps the
	// raft entries of those they lack (store.AttachFiles).
	if n.files, err = ledgerfiles.OpenWriter(LedgerDir(cfg.DataDir), cfg.LedgerChunkBytes, cfg.LedgerChunkTransactions); err != nil {
		return nil, fmt.Errorf("ledger files: %w", err)
	}
	if err := n.st.AttachFiles(ledgerfiles.NewReader(LedgerDir(cfg.DataDir)), n.files.Synced()); err != nil {
		return nil, err
	}
	rlog, err := n.st.RaftLog()
	if err != nil {
		return nil, err
	}
	last, _ := rlog.LastIndex()
	// A store with no raft state is a creation that crashed before its
	// first entry was durable: Create may complete it, Reopen refuses it.
	exists := last > 0 || !raft.IsEmptyHardState(rlog.HardState())
	create := false
	switch {
	case cfg.Join:
		if mode == Create {
			return nil, fmt.Errorf("%w: %s belongs to a node that joined a network", ErrNetworkExists, cfg.DataDir)
		}
	case mode == Reopen && !exists:
		return nil, fmt.Errorf("%w: the store in %s is empty; create a network with `charterd create`, or add a node with `charterd join`", ErrNoNetwork, cfg.DataDir)
	case mode == Create && exists:
		return nil, fmt.Errorf("%w: %s; run it with `charterd start`, or create the new network in an empty directory", ErrNetworkExists, cfg.DataDir)
	case mode != Reopen && !exists:
		create = true
	}
	n.ledger, err = ledger.Open(n.st, ledger.Config{CheckpointInterval: cfg.CheckpointInterval, CheckpointMaxTx: cfg.CheckpointMaxTx}, logger)
	if err != nil {
		return nil, err
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "charter:" + ln.Addr().String()
	}
	// The network's first node makes its identity; a node that joins holds
	// only the public half until the network trusts it and releases the
	// rest to its attested key (join.go).
	if n.sealer, err = identity.OpenSealer(cfg.Platform, cfg.DataDir, cfg.SealKeyFile); err != nil {
		return nil, err
	}
	if cfg.Join {
		n.id, err = identity.Load(cfg.DataDir, n.sealer)
	} else {
		n.id, err = identity.LoadOrCreate(cfg.DataDir, issuer, create, n.sealer)
	}
	if err != nil {
		return nil, fmt.Errorf("service identity in %s: %w", cfg.DataDir, err)
	}
	v, err := note.NewVerifier(n.id.NoteVerifier)
	if err != nil {
		return nil, err
	}
	n.issuer = v.Name()
	if create && mode != Recovered && len(cfg.Members) == 0 {
		if _, err := identity.CreateMember(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("member identity: %w", err)
		}
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	n.host = host
	n.nodeKey, err = identity.LoadOrCreateNodeKey(cfg.DataDir, n.sealer)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	cert, err := identity.NodeTLSCertificate(n.id, n.nodeKey, cfg.NodeID, host, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n.tlsCert.Store(&cert)
	if n.evidence, err = attest.NodeEvidence(context.Background(), cfg.Platform, n.nodeKey); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if a := cfg.Attestation; a.AMDRootsFile != "" {
		chain, err := os.ReadFile(a.AMDRootsFile)
		if err != nil {
			return nil, fmt.Errorf("attestation: AMD roots: %w", err)
		}
		if n.amdRoots, err = attest.RootsFromKDSChain(a.AMDProductLine, chain); err != nil {
			return nil, err
		}
	}
	rcfg := replication.Config{
		ID: cfg.NodeID, SnapshotEntries: cfg.SnapshotEntries,
		LogRetentionBytes: cfg.RaftLogRetentionBytes, LogRetention: cfg.RaftLogRetention,
		SnapshotDir: store.SnapshotDir(cfg.DataDir),
		Peers:       replication.NewPeerTable(nil),
		RegisteredURL: func(id uint64) string {
			rec, _ := join.RecordOf(n.ledger, id)
			return rec.URL
		},
	}
	if create {
		// Genesis has one node; the others join (join.go) with their URL
		// in the configuration change that adds them. The first node's
		// URL goes in the bootstrap change, so every node's record of the
		// network (MapNodes, which a restarted node dials from) has it:
		// without it, a restarted node could reach the first node only
		// after the first node had written to it.
		rcfg.Bootstrap = map[uint64]string{cfg.NodeID: "https://" + ln.Addr().String()}
	}
	for id, u := range cfg.PeerDial {
		rcfg.Peers.SetDial(id, u)
	}
	n.peers = peer.NewDirectory(peer.DirectoryConfig{
		Ledger: n.ledger, ServiceCert: n.id.ServiceCert, Certificate: n.tlsCert.Load,
		// Read per request: raft starts below, before the node serves.
		NodeInfo: func(id uint64) (replication.NodeInfo, error) { return n.raft.NodeInfo(id) },
	})
	// Every node can reach peers, a single-node network included: nodes
	// may join it later.
	n.transport = peer.NewHTTPTransport(cfg.NodeID, "https://"+ln.Addr().String(), rcfg.Peers, n.peers.Client, n.st, logger)
	n.raft, err = replication.Start(rcfg, n.st, n.ledger, n.transport, logger)
	if err != nil {
		return nil, err
	}
	n.backfill = &peer.Backfiller{Self: cfg.NodeID, Store: n.st, Peers: rcfg.Peers, ClientFor: n.peers.Client,
		Leader: n.raft.LeaderID, Log: logger}
	n.keeper, err = ledgersecrets.Open(ledgersecrets.Config{
		DataDir: cfg.DataDir, Sealer: n.sealer, NodeID: cfg.NodeID, NodeKey: n.nodeKey,
		Ledger: n.ledger, Raft: n.raft, Log: logger,
		Identity: n.full.Load, SetIdentity: n.full.Store,
	})
	if err != nil {
		return nil, err
	}
	n.restore = &restore.Recorder{DataDir: cfg.DataDir, NodeID: cfg.NodeID, Identity: n.id,
		Ledger: n.ledger, Raft: n.raft, NodeWrites: n.genesisNodeWrites, Log: logger}
	ok = true
	return n, nil
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.listener.Addr() }

// URL is the node's base URL.
func (n *Node) URL() string { return "https://" + n.listener.Addr().String() }

// Serving is closed once the node has recovered and serves requests.
func (n *Node) Serving() <-chan struct{} { return n.serving }

func (n *Node) close() {
	if n.transport != nil {
		n.transport.Close()
	}
	if n.listener != nil {
		n.listener.Close()
	}
	if n.files != nil {
		if err := n.files.Close(); err != nil {
			n.log.Error("closing the ledger files", "err", err)
		}
	}
	if n.st != nil {
		if err := n.st.Close(); err != nil {
			n.log.Error("closing store", "err", err)
		}
	}
}

// Run serves until ctx ends: it starts raft and the HTTP listener at once
// (peers need it to elect a leader and replicate), recovers, and only then
// opens the service API; until then it answers 503. It shuts down in order:
// HTTP first, then the sequencer and raft, then the store.
func (n *Node) Run(ctx context.Context) error {
	defer n.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.raft.Run(gctx) })
	g.Go(func() error { return n.ledger.RunSequencer(gctx, n.raft) })
	g.Go(func() error { return n.writeLedgerFiles(gctx) })
	// A state image leaves the history below its floor to be fetched from
	// the peers (internal/peer's history protocol).
	g.Go(func() error { return n.backfill.Run(gctx) })
	srv, svc, err := n.httpServer()
	if err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	g.Go(func() error {
		err := srv.ServeTLS(n.listener, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		return srv.Shutdown(sctx)
	})
	fail := func(err error) error {
		cancel()
		return errors.Join(err, g.Wait())
	}
	if err := n.recover(gctx); err != nil {
		return fail(err)
	}
	if err := n.bootstrapGovernance(gctx); err != nil {
		return fail(err)
	}
	governed := registry.NewGoverned(n.ledger)
	svc.CurrentPolicy = governed.Policy
	svc.CurrentRegistrationPolicy = governed.RegistrationPolicy
	svc.IssuerKey = governed.IssuerKey
	if svc.Keys, err = n.restore.ServiceKeys(); err != nil {
		return fail(err)
	}
	// Everything the handlers read is set before this store, and they load
	// it before reading (happens-before through the atomic).
	n.ready.Store(true)
	// Only a node that holds the service key signs checkpoints; a joined
	// node gets it once the network trusts it.
	g.Go(func() error {
		id, err := n.awaitSecrets(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		n.full.Store(id)
		if !n.id.HasSecrets() {
			// Trusted now: serve as the service, with a server
			// certificate this node issues itself.
			cert, err := identity.NodeTLSCertificate(id, n.nodeKey, n.cfg.NodeID, n.host, "")
			if err != nil {
				return err
			}
			n.tlsCert.Store(&cert)
			n.log.Info("serving with this node's server certificate: it is trusted")
		}
		signer, err := identity.NewTreeHeadSigner(id, n.issuer)
		if err != nil {
			return err
		}
		return n.ledger.RunCheckpointer(gctx, n.raft, signer, nil)
	})
	if n.transport != nil {
		members := &membership.Keeper{NodeID: n.cfg.NodeID, Raft: n.raft, Ledger: n.ledger, Log: n.log}
		g.Go(func() error { return members.Run(gctx) })
	}
	g.Go(func() error { return n.keeper.Run(gctx) })
	url := n.URL()
	if err := durable.WriteFile(filepath.Join(n.cfg.DataDir, identity.FileNodeURL), []byte(url+"\n"), 0o644); err != nil {
		return fail(fmt.Errorf("writing node.url: %w", err))
	}
	st := n.ledger.State()
	n.log.Info("charterd serving", "url", url, "issuer", n.issuer, "ledger_size", st.Size, "checkpoint_size", st.LastCheckpointSize, "data", n.cfg.DataDir)
	close(n.serving)
	return g.Wait()
}

// recover waits until raft has replayed every committed entry it has, and
// until the network exists: the leader of a new network proposes its
// genesis transaction, every other node waits to receive it. The tree was
// already checked against the newest checkpoint when the ledger opened.
func (n *Node) recover(ctx context.Context) error {
	commit := n.raft.Committed()
	for n.raft.Applied() < commit {
		if err := pause.For(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	var proposed time.Time
	for n.ledger.State().Size == 0 {
		if leader, _ := n.raft.Leader(); leader && time.Since(proposed) > 2*time.Second {
			body, err := n.genesisBody()
			if err != nil {
				return err
			}
			if err := n.ledger.ProposeGenesis(ctx, n.raft, body); err != nil {
				n.log.Warn("proposing genesis failed; retrying", "err", err)
			}
			proposed = time.Now()
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := n.ledger.WaitApplied(wctx, 1)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && proposed != (time.Time{}) {
			n.log.Info("created network", "issuer", n.issuer)
		}
	}
	rec, err := n.ledger.Record(1)
	if err != nil {
		return fmt.Errorf("reading genesis: %w", err)
	}
	g, err := genesis.Unmarshal(rec.Body)
	if err != nil {
		return err
	}
	n.genesis = g
	if err := n.restore.CheckServiceIdentity(ctx, g); err != nil {
		return err
	}
	return nil
}

func (n *Node) genesisBody() ([]byte, error) {
	files := n.cfg.Members
	if len(files) == 0 {
		files = []string{filepath.Join(n.cfg.DataDir, identity.FileMemberCert)}
	}
	var members [][]byte
	for _, f := range files {
		memberPEM, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("member certificate: %w", err)
		}
		member, err := identity.ParseCertPEM(memberPEM)
		if err != nil {
			return nil, fmt.Errorf("member certificate %s: %w", f, err)
		}
		members = append(members, member.Raw)
	}
	var constitution string
	if n.cfg.Constitution != "" {
		b, err := os.ReadFile(n.cfg.Constitution)
		if err != nil {
			return nil, fmt.Errorf("constitution: %w", err)
		}
		constitution = string(b)
	}
	g := &genesis.Genesis{
		Issuer: n.issuer, ServiceCert: n.id.ServiceCert.Raw, NoteVerifierKey: n.id.NoteVerifier,
		Members: members, Registration: n.cfg.Registration, CreatedAt: time.Now().Unix(),
		Constitution: constitution, MembersActive: len(n.cfg.Members) == 0,
		Development: n.cfg.Development, OpenByVote: n.cfg.OpenByVote,
	}
	return g.Marshal()
}

func (n *Node) httpServer() (*http.Server, *registry.Service, error) {
	serviceKey, err := cose.NewKey(n.id.ServiceCert.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	apps := apphost.New(apphost.Config{
		Ledger: n.ledger, Logger: n.log, NodeID: n.cfg.NodeID, ServiceCertPEM: n.id.ServiceCertPEM,
		Secrets: func() (apphost.Secrets, bool) { return n.keeper, n.full.Load() != nil },
	})
	govSvc := gov.NewService(replicatedLedger{n.ledger, n.raft}, gov.Config{ValidateApp: validateAppBundle, RecoveredSecrets: n.keeper.Adopt, ServiceCert: n.id.ServiceCert}, n.log)
	svc := &registry.Service{
		Ledger:          replicatedLedger{n.ledger, n.raft},
		Keys:            cose.KeySet{serviceKey},
		Issuer:          n.issuer,
		NoteVerifierKey: n.id.NoteVerifier,
		Wait:            n.cfg.RegistrationWait,
		Log:             n.log,

		BatchMaxStatements: n.cfg.BatchMaxStatements,
		BatchMaxBytes:      n.cfg.BatchMaxBytes,
	}
	api := httpapi.New(httpapi.Config{
		NodeID: n.cfg.NodeID, Log: n.log, Ledger: n.ledger, Raft: n.raft,
		Forward:  n.transport != nil,
		Ready:    n.ready.Load,
		Registry: svc, Gov: govSvc, Apps: apps, Joins: n.newJoinLeader(),
		IdentifyPeer: n.peers.Identify, PeerClient: n.peers.Client,
		ServiceCertPEM: n.id.ServiceCertPEM, Issuer: n.issuer, NoteVerifier: n.id.NoteVerifier,
		// Read per request: genesis is known once recovery is done.
		LedgerDir:   LedgerDir(n.cfg.DataDir),
		NetworkKind: func() string { return n.genesis.NetworkKind() },
		Evidence:    n.evidence, NodeKey: &n.nodeKey.PublicKey,
		Collectors: append(n.keeper.Collectors(), n.st.Collector()),
	})
	return &http.Server{
		Handler: api.Handler(),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			CipherSuites: peer.TLS12CipherSuites,
			// The certificate changes once: when a joined node is trusted,
			// it replaces the client-only one with a server certificate.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.tlsCert.Load(), nil },
			// Peers present their node certificates (checked by
			// peer.Directory.Identify); app users and members may present theirs
			// (checked by appauth against governance's maps); others none.
			ClientAuth: tls.RequestClientCert,
		},
		// Bounds for slow or hostile clients: a statement is at most a few
		// MiB, and a registration waits at most RegistrationWait.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute + n.cfg.RegistrationWait,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}, svc, nil
}
