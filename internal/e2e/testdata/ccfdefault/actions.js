// More actions for the CCF-style test constitution (appended to
// ../ccfconstitution/actions.js, before validate.js): those of CCF's
// default constitution that call the rest of the `ccf` API, written from
// CCF's documented behaviour so that CI runs every ccf.* function the
// default calls, the same way it calls them.

function checkNoArgs(args) {
  if (args !== undefined && args !== null && Object.keys(args).length !== 0) {
    throw new Error("this action takes no arguments");
  }
}

function checkId(value, field) {
  requireType(value, "string", field);
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new Error(`${field} must be 64 hex digits`);
}

function serviceConfig() {
  const raw = ccf.kv["public:ccf.gov.service.config"].get(singleton());
  if (raw === undefined) throw new Error("no service configuration");
  return ccf.bufToJsonCompatible(raw);
}

function activeRecoveryMembers() {
  let n = 0;
  ccf.kv["public:ccf.gov.members.encryption_public_keys"].forEach((_, id) => {
    const info = ccf.kv["public:ccf.gov.members.info"].get(id);
    if (info !== undefined && ccf.bufToJsonCompatible(info).status === "Active") n++;
  });
  return n;
}

function serviceStatus() {
  return ccf.bufToJsonCompatible(ccf.kv["public:ccf.gov.service.info"].get(singleton())).status;
}

function checkJwks(jwks) {
  requireType(jwks, "object", "jwks");
  requireType(jwks.keys, "array", "jwks.keys");
  for (const k of jwks.keys) {
    requireType(k.kid, "string", "kid");
    requireType(k.kty, "string", "kty");
  }
}

function setNodeStatus(id, from, to) {
  const nodes = ccf.kv["public:ccf.gov.nodes.info"];
  const raw = nodes.get(ccf.strToBuf(id));
  if (raw === undefined) throw new Error(`No such node: ${id}`);
  const info = ccf.bufToJsonCompatible(raw);
  if (from !== undefined && info.status !== from) return;
  info.status = to;
  if (to === "Trusted") {
    info.ledger_secret_seqno = ccf.network.getLatestLedgerSecretSeqno();
    if (info.certificate_signing_request !== undefined) {
      ccf.network.generateEndorsedCertificate(info.certificate_signing_request, "20250101000000Z", 365);
    }
  }
  nodes.set(ccf.strToBuf(id), ccf.jsonCompatibleToBuf(info));
}

for (const [name, action] of [
  ["set_recovery_threshold", new Action(
    (args) => {
      if (!Number.isInteger(args.recovery_threshold) || args.recovery_threshold < 1 || args.recovery_threshold > 254) {
        throw new Error("recovery_threshold must be an integer in [1, 254]");
      }
    },
    (args) => {
      const config = serviceConfig();
      if (config.recovery_threshold === args.recovery_threshold) return;
      if (serviceStatus() === "Open" && args.recovery_threshold > activeRecoveryMembers()) {
        throw new Error(`recovery threshold ${args.recovery_threshold} exceeds the ${activeRecoveryMembers()} active recovery members`);
      }
      config.recovery_threshold = args.recovery_threshold;
      ccf.kv["public:ccf.gov.service.config"].set(singleton(), ccf.jsonCompatibleToBuf(config));
      ccf.node.triggerRecoverySharesRefresh();
    })],
  ["trigger_recovery_shares_refresh", new Action(checkNoArgs, () => ccf.node.triggerRecoverySharesRefresh())],
  ["trigger_ledger_rekey", new Action(checkNoArgs, () => ccf.node.triggerLedgerRekey())],
  ["trigger_ledger_chunk", new Action(() => {}, () => ccf.node.triggerLedgerChunk())],
  ["trigger_snapshot", new Action(() => {}, () => ccf.node.triggerSnapshot())],
  ["trigger_acme_refresh", new Action(() => {}, (args) => ccf.node.triggerACMERefresh(args.interfaces))],
  ["set_jwt_issuer", new Action(
    (args) => {
      requireType(args.issuer, "string", "issuer");
      if (args.jwks !== undefined) checkJwks(args.jwks);
    },
    (args) => {
      const jwks = args.jwks;
      delete args.jwks;
      if (jwks) ccf.setJwtPublicSigningKeys(args.issuer, args, jwks);
      ccf.kv["public:ccf.gov.jwt.issuers"].set(ccf.strToBuf(args.issuer), ccf.jsonCompatibleToBuf(args));
    })],
  ["set_jwt_public_signing_keys", new Action(
    (args) => { requireType(args.issuer, "string", "issuer"); checkJwks(args.jwks); },
    (args) => {
      const meta = ccf.kv["public:ccf.gov.jwt.issuers"].get(ccf.strToBuf(args.issuer));
      if (meta === undefined) throw new Error(`issuer ${args.issuer} not found`);
      ccf.setJwtPublicSigningKeys(args.issuer, ccf.bufToJsonCompatible(meta), args.jwks);
    })],
  ["remove_jwt_issuer", new Action(
    (args) => requireType(args.issuer, "string", "issuer"),
    (args) => {
      const issuer = ccf.strToBuf(args.issuer);
      if (!ccf.kv["public:ccf.gov.jwt.issuers"].has(issuer)) return;
      ccf.kv["public:ccf.gov.jwt.issuers"].delete(issuer);
      ccf.removeJwtPublicSigningKeys(args.issuer);
    })],
  ["transition_node_to_trusted", new Action(
    (args) => checkId(args.node_id, "node_id"),
    (args) => { serviceConfig(); setNodeStatus(args.node_id, "Pending", "Trusted"); })],
  ["remove_node", new Action(
    (args) => checkId(args.node_id, "node_id"),
    (args) => {
      const raw = ccf.kv["public:ccf.gov.nodes.info"].get(ccf.strToBuf(args.node_id));
      if (raw === undefined) return;
      if (ccf.bufToJsonCompatible(raw).status === "Pending") {
        ccf.kv["public:ccf.gov.nodes.info"].delete(ccf.strToBuf(args.node_id));
      } else {
        setNodeStatus(args.node_id, undefined, "Retired");
      }
    })],
  ["remove_member", new Action(
    (args) => checkId(args.member_id, "member_id"),
    (args) => {
      const id = ccf.strToBuf(args.member_id);
      const raw = ccf.kv["public:ccf.gov.members.info"].get(id);
      if (raw === undefined) return;
      const active = ccf.bufToJsonCompatible(raw).status === "Active";
      const recovery = ccf.kv["public:ccf.gov.members.encryption_public_keys"].has(id);
      if (active && recovery) {
        const left = activeRecoveryMembers() - 1;
        const threshold = serviceConfig().recovery_threshold;
        if (left < threshold) {
          throw new Error(`Number of active recovery members (${left}) would be less than recovery threshold (${threshold})`);
        }
      }
      for (const m of ["public:ccf.gov.members.info", "public:ccf.gov.members.encryption_public_keys",
        "public:ccf.gov.members.certs", "public:ccf.gov.members.acks", "public:ccf.gov.history"]) {
        ccf.kv[m].delete(id);
      }
      if (active && recovery) ccf.node.triggerLedgerRekey();
    })],
]) {
  actions.set(name, action);
}
