export function validate(input) {
  const proposal = JSON.parse(input);
  if (!Array.isArray(proposal.actions)) {
    return { valid: false, description: "the proposal has no actions" };
  }
  const problems = [];
  proposal.actions.forEach((action, i) => {
    const def = actions.get(action.name);
    if (def === undefined) {
      problems.push(`action ${i}: ${action.name} is not an action of this constitution`);
      return;
    }
    try {
      def.validate(action.args === undefined ? {} : action.args);
    } catch (e) {
      problems.push(`action ${i} (${action.name}): ${e.message}`);
    }
  });
  return { valid: problems.length === 0, description: problems.join("; ") };
}
