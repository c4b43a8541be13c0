// PUT /{user_id}/users/{role}: an Active member assigns a role to a user id.
// As in CCF's sample, neither the user nor the role has to exist yet: the
// assignment takes effect once both do (authorization looks them up at
// check time). Reassigning a user replaces the role.

import { isActiveMemberCaller, ok, unauthorized } from "../lib/auth.js";
import { setUserRole } from "../lib/store.js";

export function add_user(request) {
  if (!isActiveMemberCaller(request)) {
    return unauthorized();
  }
  const userId = request.params.user_id;
  const role = request.params.role;
  setUserRole(userId, role);
  console.log("Added user " + userId + " with role " + role);
  return ok();
}
