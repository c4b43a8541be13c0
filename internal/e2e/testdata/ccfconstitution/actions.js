// A constitution in CCF's style, written for Charter's tests against
// CCF's documented `ccf` API: a Map of actions, each with validate (throws
// on bad arguments) and apply (writes through ccf.kv with ArrayBuffer keys
// and values). actions.js, validate.js, resolve.js and apply.js are
// concatenated into one module, as CCF's set_constitution bundles them.

const singleton = () => new ArrayBuffer(8);

function requireType(value, type, field) {
  const optional = type.endsWith("?");
  const want = optional ? type.slice(0, -1) : type;
  if (optional && (value === undefined || value === null)) return;
  const ok = want === "array" ? Array.isArray(value) : typeof value === want && value !== null;
  if (!ok) throw new Error(`${field} must be ${want}, not ${typeof value}`);
}

function requireCert(pem, field) {
  requireType(pem, "string", field);
  if (!ccf.crypto.isValidX509CertBundle(pem)) {
    throw new Error(`${field} is not a PEM certificate (bundle)`);
  }
}

function putJSON(map, key, value) {
  ccf.kv[map].set(key, ccf.jsonCompatibleToBuf(value));
}

// Every other open proposal was made under the old rules: drop it.
function dropOtherOpenProposals(keep) {
  const infos = ccf.kv["public:ccf.gov.proposals_info"];
  infos.forEach((raw, key) => {
    if (ccf.bufToStr(key) === keep) return;
    const info = ccf.bufToJsonCompatible(raw);
    if (info.state === "Open") {
      info.state = "Dropped";
      infos.set(key, ccf.jsonCompatibleToBuf(info));
    }
  });
}

class Action {
  constructor(validate, apply) {
    this.validate = validate;
    this.apply = apply;
  }
}

const actions = new Map([
  ["set_member", new Action(
    (args) => {
      requireCert(args.cert, "cert");
      requireType(args.member_data, "object?", "member_data");
      requireType(args.encryption_pub_key, "string?", "encryption_pub_key");
    },
    (args) => {
      const id = ccf.strToBuf(ccf.pemToId(args.cert));
      ccf.kv["public:ccf.gov.members.certs"].set(id, ccf.strToBuf(args.cert));
      const keys = ccf.kv["public:ccf.gov.members.encryption_public_keys"];
      if (args.encryption_pub_key) keys.set(id, ccf.strToBuf(args.encryption_pub_key));
      else keys.delete(id);
      putJSON("public:ccf.gov.members.info", id, { status: "Accepted", member_data: args.member_data });
      // The digest the new member will acknowledge: the latest signature's root.
      const sig = ccf.kv["public:ccf.internal.signatures"].get(singleton());
      if (sig !== undefined) {
        putJSON("public:ccf.gov.members.acks", id, { state_digest: ccf.bufToJsonCompatible(sig).root });
      }
    },
  )],
  ["set_user", new Action(
    (args) => {
      requireCert(args.cert, "cert");
      requireType(args.user_data, "object?", "user_data");
    },
    (args) => {
      const id = ccf.strToBuf(ccf.pemToId(args.cert));
      ccf.kv["public:ccf.gov.users.certs"].set(id, ccf.strToBuf(args.cert));
      if (args.user_data === undefined || args.user_data === null) {
        ccf.kv["public:ccf.gov.users.info"].delete(id);
      } else {
        putJSON("public:ccf.gov.users.info", id, { user_data: args.user_data });
      }
    },
  )],
  ["set_js_app", new Action(
    (args) => {
      const bundle = args.bundle;
      requireType(bundle, "object", "bundle");
      requireType(bundle.modules, "array", "bundle.modules");
      for (const [i, m] of bundle.modules.entries()) {
        requireType(m.name, "string", `bundle.modules[${i}].name`);
        requireType(m.module, "string", `bundle.modules[${i}].module`);
      }
      requireType(bundle.metadata, "object", "bundle.metadata");
      requireType(bundle.metadata.endpoints, "object", "bundle.metadata.endpoints");
      for (const [url, methods] of Object.entries(bundle.metadata.endpoints)) {
        for (const [method, info] of Object.entries(methods)) {
          const at = `${method} ${url}`;
          requireType(info.js_module, "string", `${at}: js_module`);
          requireType(info.js_function, "string", `${at}: js_function`);
          requireType(info.authn_policies, "array", `${at}: authn_policies`);
          if (!bundle.modules.some((m) => m.name === info.js_module)) {
            throw new Error(`${at}: module ${info.js_module} is not in the bundle`);
          }
        }
      }
      requireType(args.disable_bytecode_cache, "boolean?", "disable_bytecode_cache");
    },
    (args) => {
      const modules = ccf.kv["public:ccf.gov.modules"];
      const endpoints = ccf.kv["public:ccf.gov.endpoints"];
      modules.clear();
      endpoints.clear();
      for (const m of args.bundle.modules) {
        modules.set(ccf.strToBuf("/" + m.name), ccf.strToBuf(m.module));
      }
      for (const [url, methods] of Object.entries(args.bundle.metadata.endpoints)) {
        for (const [method, info] of Object.entries(methods)) {
          const stored = Object.assign({}, info, { js_module: "/" + info.js_module });
          endpoints.set(ccf.strToBuf(`${method.toUpperCase()} ${url}`), ccf.jsonCompatibleToBuf(stored));
        }
      }
      if (args.disable_bytecode_cache) {
        ccf.kv["public:ccf.gov.modules_quickjs_bytecode"].clear();
      } else {
        ccf.refreshAppBytecodeCache();
      }
    },
  )],
  ["transition_service_to_open", new Action(
    (args) => {
      requireCert(args.next_service_identity, "next_service_identity");
      if (args.previous_service_identity !== undefined) {
        requireCert(args.previous_service_identity, "previous_service_identity");
      }
    },
    (args) => {
      const raw = ccf.kv["public:ccf.gov.service.info"].get(singleton());
      if (raw === undefined) throw new Error("no service information");
      if (ccf.bufToJsonCompatible(raw).status === "Open") throw new Error("the service is already open");
      const previous = args.previous_service_identity === undefined
        ? undefined
        : ccf.strToBuf(args.previous_service_identity);
      ccf.node.transitionServiceToOpen(previous, ccf.strToBuf(args.next_service_identity));
    },
  )],
  ["set_constitution", new Action(
    (args) => requireType(args.constitution, "string", "constitution"),
    (args, proposalId) => {
      putJSON("public:ccf.gov.constitution", singleton(), args.constitution);
      dropOtherOpenProposals(proposalId);
    },
  )],
]);
