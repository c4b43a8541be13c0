// App-level authentication for the decentralized RBAC sample.
//
// CCF's member_cert policy only proves that the caller holds a member
// certificate; it does not look at the member's status. The sample adds
// its own check: members must be Active (a member that was proposed but has
// not yet acked, status "Accepted", may not define roles or users). Users
// must still be registered in public:ccf.gov.users.certs.
//
// Both governance maps are keyed by the hex id's UTF-8 bytes;
// members.info holds JSON such as {"status":"Active","member_data":...}.

const membersCerts = ccf.kv["public:ccf.gov.members.certs"];
const membersInfo = ccf.kv["public:ccf.gov.members.info"];
const usersCerts = ccf.kv["public:ccf.gov.users.certs"];

function callerId(request, policy) {
  const caller = request.caller;
  if (caller === null || typeof caller !== "object" || caller.policy !== policy) {
    return undefined;
  }
  return typeof caller.id === "string" && caller.id !== "" ? caller.id : undefined;
}

// isActiveMemberCaller: the caller authenticated with member_cert and is an
// Active member.
export function isActiveMemberCaller(request) {
  const id = callerId(request, "member_cert");
  if (id === undefined) {
    return false;
  }
  const key = ccf.strToBuf(id);
  if (!membersCerts.has(key)) {
    return false;
  }
  const info = membersInfo.get(key);
  if (info === undefined) {
    return false;
  }
  let parsed;
  try {
    parsed = ccf.bufToJsonCompatible(info);
  } catch (e) {
    return false;
  }
  return parsed !== null && typeof parsed === "object" && parsed.status === "Active";
}

// isUserCaller: the caller authenticated with user_cert and is a user.
export function isUserCaller(request) {
  const id = callerId(request, "user_cert");
  return id !== undefined && usersCerts.has(ccf.strToBuf(id));
}

// unauthorized is the sample's app-level authentication failure: 401 with a
// ServiceResult body. Field order matters to clients comparing bodies
// byte for byte: content, error, success, failure, statusCode, status.
export function unauthorized() {
  return {
    statusCode: 401,
    body: {
      content: null,
      error: { errorMessage: "Unauthorized", errorType: "Unauthorized" },
      success: false,
      failure: true,
      statusCode: 401,
      status: "Error",
    },
  };
}

// ok is the sample's success answer for the two member endpoints.
export function ok() {
  return { statusCode: 200, headers: { "content-type": "text/html" }, body: "Ok" };
}
