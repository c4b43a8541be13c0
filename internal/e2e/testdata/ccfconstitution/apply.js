export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    actions.get(action.name).apply(action.args === undefined ? {} : action.args, proposalId);
  }
}
