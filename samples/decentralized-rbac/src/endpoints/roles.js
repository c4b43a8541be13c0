// PUT /{role}/roles/{action}: an Active member defines a role and the single
// action it allows. Both are stored lower case, so later checks are
// case-insensitive. Redefining a role replaces its action.

import { isActiveMemberCaller, ok, unauthorized } from "../lib/auth.js";
import { setRole } from "../lib/store.js";

export function add_role(request) {
  if (!isActiveMemberCaller(request)) {
    return unauthorized();
  }
  const role = request.params.role;
  const action = request.params.action;
  setRole(role, action);
  console.log("Added role " + role + " with action " + action);
  return ok();
}
