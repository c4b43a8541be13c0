// min-svn.js: require a minimum security version number.
//
// phdr.cwt.svn (the CWT claim "svn", an unsigned integer) must be present
// and at least MIN_SVN: raise MIN_SVN by governance to refuse statements
// from issuers' superseded, vulnerable versions. Configure: MIN_SVN.
const MIN_SVN = 1;

export function apply(phdr, uhdr, payload, details) {
  const svn = phdr.cwt && phdr.cwt.svn;
  if (svn === undefined) {
    return "no svn in the CWT claims";
  }
  if (svn < MIN_SVN) {
    return `svn ${svn} is below the minimum ${MIN_SVN}`;
  }
  return true;
}
