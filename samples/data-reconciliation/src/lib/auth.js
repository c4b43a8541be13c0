// Who is calling, as this sample counts votes.
//
// The endpoints accept member_cert, user_cert and jwt; CCF (Charter's HTTP
// layer) has already checked the certificate or the token. On top of that:
//   member_cert: the member must still be in public:ccf.gov.members.certs
//                and be Active in public:ccf.gov.members.info;
//   user_cert:   the user must still be in public:ccf.gov.users.certs;
//   jwt:         the token must carry a non-empty string `sub`.
// The caller id under which a vote is stored is caller.id for certificates
// (hex SHA-256 of the DER) and the token's `sub` for jwt. Note that the two
// namespaces are not separated: a jwt whose sub equals a member's id votes
// as that member. That is CCF's sample's contract; deployments that admit
// jwt issuers should make sure subs cannot look like certificate ids.

const membersCerts = ccf.kv["public:ccf.gov.members.certs"];
const membersInfo = ccf.kv["public:ccf.gov.members.info"];
const usersCerts = ccf.kv["public:ccf.gov.users.certs"];

function isActiveMember(id) {
  const key = ccf.strToBuf(id);
  if (!membersCerts.has(key)) {
    return false;
  }
  const info = membersInfo.get(key);
  if (info === undefined) {
    return false;
  }
  try {
    const parsed = ccf.bufToJsonCompatible(info);
    return parsed !== null && typeof parsed === "object" && parsed.status === "Active";
  } catch (e) {
    return false;
  }
}

// callerId returns the caller's vote id, or undefined if the caller is not
// allowed to use the app.
export function callerId(request) {
  const caller = request.caller;
  if (caller === null || typeof caller !== "object") {
    return undefined;
  }
  switch (caller.policy) {
    case "member_cert":
      return typeof caller.id === "string" && caller.id !== "" && isActiveMember(caller.id) ? caller.id : undefined;
    case "user_cert":
      return typeof caller.id === "string" && caller.id !== "" && usersCerts.has(ccf.strToBuf(caller.id))
        ? caller.id
        : undefined;
    case "jwt": {
      const payload = caller.jwt && caller.jwt.payload;
      const sub = payload && typeof payload === "object" ? payload.sub : undefined;
      return typeof sub === "string" && sub !== "" ? sub : undefined;
    }
    default:
      return undefined;
  }
}
