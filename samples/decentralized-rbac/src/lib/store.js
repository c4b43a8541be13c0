// The sample's two public maps, both UTF-8 string -> UTF-8 string:
//   public:rbac.roles  role (lower case) -> the one action it allows (lower case)
//   public:rbac.users  user id -> role (as given; lower-cased when looked up)
// They are public so that auditors can read the policy from the ledger.

const roles = ccf.kv["public:rbac.roles"];
const users = ccf.kv["public:rbac.users"];

function getString(map, key) {
  const v = map.get(ccf.strToBuf(key));
  return v === undefined ? undefined : ccf.bufToStr(v);
}

export function setRole(role, action) {
  roles.set(ccf.strToBuf(role.toLowerCase()), ccf.strToBuf(action.toLowerCase()));
}

export function setUserRole(userId, role) {
  users.set(ccf.strToBuf(userId), ccf.strToBuf(role));
}

export function getUserRole(userId) {
  return getString(users, userId);
}

export function getRoleAction(role) {
  return getString(roles, role.toLowerCase());
}
