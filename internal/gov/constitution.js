// Charter's default constitution. A proposal passes when a strict majority
// of the active members vote for it, and fails when a strict majority votes
// against it. Each action validates its arguments (validate) and writes its
// effect through the host API (apply); see constitution.go for that API.

const M = {
  memberCerts: "public:ccf.gov.members.certs",
  memberInfo: "public:ccf.gov.members.info",
  memberEncKeys: "public:ccf.gov.members.encryption_public_keys",
  memberAcks: "public:ccf.gov.members.acks",
  constitution: "public:ccf.gov.constitution",
  serviceInfo: "public:ccf.gov.service.info",
  userCerts: "public:ccf.gov.users.certs",
  userInfo: "public:ccf.gov.users.info",
  nodesInfo: "public:ccf.gov.nodes.info",
  snpMeasurements: "public:ccf.gov.nodes.snp.measurements",
  snpHostData: "public:ccf.gov.nodes.snp.host_data",
  virtualMeasurements: "public:ccf.gov.nodes.virtual.measurements",
  recovery: "public:ccf.gov.recovery",
  scittConfig: "public:scitt.configuration",
  scittPolicy: "public:scitt.policy",
  issuerKeys: "public:scitt.issuer_keys",
};

const ALGORITHMS = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"];

function fail(msg) { throw new Error(msg); }
function isObject(v) { return typeof v === "object" && v !== null && !Array.isArray(v); }
function need(args, field, type) {
  const v = args[field];
  if (type === "array" ? !Array.isArray(v) : typeof v !== type) {
    fail(`argument ${field} must be a${type === "array" || type === "object" ? "n" : ""} ${type}`);
  }
  return v;
}
function optional(args, field, type) {
  if (args[field] === undefined) return undefined;
  return need(args, field, type);
}
function onlyFields(args, fields) {
  for (const k of Object.keys(args)) {
    if (!fields.includes(k)) fail(`unknown argument ${k} (want ${fields.join(", ")})`);
  }
}
function hex(args, field, bytes) {
  const v = need(args, field, "string");
  if (!/^[0-9a-f]+$/.test(v) || (bytes && v.length !== 2 * bytes)) {
    fail(`argument ${field} must be ${bytes ? bytes + " bytes of " : ""}lower-case hex`);
  }
  return v;
}
function get(map, key) {
  const v = charter.kv.get(map, key);
  return v === undefined || v === null ? undefined : JSON.parse(v);
}
function put(map, key, value) { charter.kv.set(map, key, JSON.stringify(value)); }
function activeMembers() {
  return charter.kv.keys(M.memberInfo).filter((id) => get(M.memberInfo, id).status === "Active");
}
function member(id) {
  if (get(M.memberInfo, id) === undefined) fail(`no member ${id}`);
}

const actions = {
  set_member: {
    validate(a) {
      onlyFields(a, ["cert", "encryption_pub_key", "member_data"]);
      charter.memberIdOf(need(a, "cert", "string"));
      optional(a, "encryption_pub_key", "string");
    },
    apply(a) {
      const id = charter.memberIdOf(a.cert);
      charter.kv.set(M.memberCerts, id, a.cert);
      const old = get(M.memberInfo, id);
      put(M.memberInfo, id, { status: old ? old.status : "Accepted", member_data: a.member_data });
      if (a.encryption_pub_key !== undefined) charter.kv.set(M.memberEncKeys, id, a.encryption_pub_key);
    },
  },
  remove_member: {
    validate(a) { onlyFields(a, ["member_id"]); hex(a, "member_id", 32); },
    apply(a) {
      member(a.member_id);
      const active = activeMembers();
      if (active.length === 1 && active[0] === a.member_id) fail("cannot remove the last active member");
      for (const m of [M.memberCerts, M.memberInfo, M.memberEncKeys, M.memberAcks]) charter.kv.delete(m, a.member_id);
    },
  },
  set_member_data: {
    validate(a) { onlyFields(a, ["member_id", "member_data"]); hex(a, "member_id", 32); },
    apply(a) {
      member(a.member_id);
      const info = get(M.memberInfo, a.member_id);
      info.member_data = a.member_data;
      put(M.memberInfo, a.member_id, info);
    },
  },
  set_user: {
    validate(a) { onlyFields(a, ["cert", "user_data"]); charter.memberIdOf(need(a, "cert", "string")); },
    apply(a) {
      const id = charter.memberIdOf(a.cert);
      charter.kv.set(M.userCerts, id, a.cert);
      put(M.userInfo, id, { user_data: a.user_data });
    },
  },
  remove_user: {
    validate(a) { onlyFields(a, ["user_id"]); hex(a, "user_id", 32); },
    apply(a) { charter.kv.delete(M.userCerts, a.user_id); charter.kv.delete(M.userInfo, a.user_id); },
  },
  set_constitution: {
    validate(a) {
      onlyFields(a, ["constitution"]);
      if (need(a, "constitution", "string").length === 0) fail("the constitution is empty");
    },
    apply(a) { charter.kv.set(M.constitution, "constitution", a.constitution); },
  },
  set_scitt_configuration: {
    validate(a) {
      onlyFields(a, ["allowed_algorithms", "max_statement_bytes", "trusted_ca_fingerprints"]);
      const algs = optional(a, "allowed_algorithms", "array");
      if (algs) for (const x of algs) if (!ALGORITHMS.includes(x)) fail(`unknown algorithm ${x} (want one of ${ALGORITHMS.join(", ")})`);
      const max = optional(a, "max_statement_bytes", "number");
      if (max !== undefined && !(Number.isInteger(max) && max >= 64 && max <= 64 * 1024 * 1024)) fail("max_statement_bytes must be an integer in [64, 64 MiB]");
      const cas = optional(a, "trusted_ca_fingerprints", "array");
      if (cas) for (const f of cas) if (typeof f !== "string" || !/^[0-9a-f]{64}$/.test(f)) fail(`trusted CA fingerprint ${f} is not 64 lower-case hex digits`);
    },
    apply(a) {
      put(M.scittConfig, "configuration", {
        allowed_algorithms: a.allowed_algorithms,
        max_statement_bytes: a.max_statement_bytes || 1048576,
        trusted_ca_fingerprints: a.trusted_ca_fingerprints,
      });
    },
  },
  set_registration_policy: {
    validate(a) { onlyFields(a, ["policy"]); need(a, "policy", "string"); },
    apply(a) { charter.kv.set(M.scittPolicy, "policy", a.policy); },
  },
  set_issuer_key: {
    validate(a) { onlyFields(a, ["issuer", "kid", "key"]); need(a, "issuer", "string"); hex(a, "kid"); need(a, "key", "string"); },
    apply(a) { charter.kv.set(M.issuerKeys, a.issuer + "|" + a.kid, a.key); },
  },
  remove_issuer_key: {
    validate(a) { onlyFields(a, ["issuer", "kid"]); need(a, "issuer", "string"); hex(a, "kid"); },
    apply(a) { charter.kv.delete(M.issuerKeys, a.issuer + "|" + a.kid); },
  },
  add_snp_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { put(M.snpMeasurements, a.measurement, {}); },
  },
  remove_snp_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { charter.kv.delete(M.snpMeasurements, a.measurement); },
  },
  add_snp_host_data: {
    validate(a) { onlyFields(a, ["host_data"]); hex(a, "host_data", 32); },
    apply(a) { put(M.snpHostData, a.host_data, {}); },
  },
  remove_snp_host_data: {
    validate(a) { onlyFields(a, ["host_data"]); hex(a, "host_data", 32); },
    apply(a) { charter.kv.delete(M.snpHostData, a.host_data); },
  },
  add_virtual_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { put(M.virtualMeasurements, a.measurement, {}); },
  },
  remove_virtual_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { charter.kv.delete(M.virtualMeasurements, a.measurement); },
  },
  // The node's record keeps what the node presented when it joined (its key
  // and evidence); governance changes only its status.
  transition_node_to_trusted: {
    validate(a) { onlyFields(a, ["node_id"]); need(a, "node_id", "string"); },
    apply(a) { put(M.nodesInfo, a.node_id, Object.assign(get(M.nodesInfo, a.node_id) || {}, { status: "Trusted" })); },
  },
  remove_node: {
    validate(a) { onlyFields(a, ["node_id"]); need(a, "node_id", "string"); },
    apply(a) { put(M.nodesInfo, a.node_id, Object.assign(get(M.nodesInfo, a.node_id) || {}, { status: "Retired" })); },
  },
  set_recovery_threshold: {
    validate(a) {
      onlyFields(a, ["recovery_threshold"]);
      const t = need(a, "recovery_threshold", "number");
      if (!Number.isInteger(t) || t < 1 || t > 255) fail("recovery_threshold must be an integer in [1, 255]");
    },
    apply(a) {
      if (a.recovery_threshold > activeMembers().length) fail("recovery_threshold exceeds the number of active members");
      put(M.recovery, "threshold", a.recovery_threshold);
    },
  },
  transition_service_to_open: {
    validate(a) { onlyFields(a, []); },
    apply() { put(M.serviceInfo, "service", { status: "Open" }); },
  },
};

export function validate(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    return { valid: false, description: "the proposal is not JSON" };
  }
  if (!isObject(proposal) || !Array.isArray(proposal.actions) || proposal.actions.length === 0) {
    return { valid: false, description: "the proposal must be {\"actions\": [...]} with at least one action" };
  }
  for (const [i, action] of proposal.actions.entries()) {
    const def = actions[action.name];
    if (def === undefined) return { valid: false, description: `action ${i}: unknown action ${JSON.stringify(action.name)}` };
    const args = action.args === undefined ? {} : action.args;
    if (!isObject(args)) return { valid: false, description: `action ${i} (${action.name}): args must be an object` };
    try {
      def.validate(args);
    } catch (e) {
      return { valid: false, description: `action ${i} (${action.name}): ${e.message}` };
    }
  }
  return { valid: true };
}

export function resolve(proposal, proposerId, votes) {
  const active = activeMembers();
  const half = Math.floor(active.length / 2);
  let yes = 0;
  let no = 0;
  for (const v of votes) {
    if (!active.includes(v.member_id)) continue;
    if (v.vote) yes++; else no++;
  }
  if (yes > half) return "Accepted";
  if (no > half) return "Rejected";
  return "Open";
}

export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    actions[action.name].apply(action.args === undefined ? {} : action.args, proposalId);
  }
}
