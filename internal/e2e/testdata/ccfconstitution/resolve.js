// A strict majority of the active members accepts; a strict majority
// against rejects.
export function resolve(proposal, proposerId, votes) {
  const active = new Set();
  ccf.kv["public:ccf.gov.members.info"].forEach((raw, id) => {
    if (ccf.bufToJsonCompatible(raw).status === "Active") active.add(ccf.bufToStr(id));
  });
  const counted = votes.filter((v) => active.has(v.member_id));
  const yes = counted.filter((v) => v.vote).length;
  const no = counted.length - yes;
  const half = Math.floor(active.size / 2);
  if (yes > half) return "Accepted";
  if (no > half) return "Rejected";
  return "Open";
}
