// Path search in a catalog: a glob (`*` and `?` within one path component, `**` across
// components) when the pattern has a wildcard, a case-insensitive substring otherwise. Paths are
// raw bytes: both sides are compared as latin1 strings of their bytes, so a UTF-8 pattern matches
// UTF-8 names and anything else still matches byte for byte.

const MAX_PATTERN = 1024;

/** A test of a path given as the latin1 string of its bytes. */
export function pathMatcher(pattern: string): (pathLatin1: string) => boolean {
  if (!pattern || pattern.length > MAX_PATTERN) throw new RangeError(`a search pattern has 1 to ${MAX_PATTERN} characters`);
  const p = Buffer.from(pattern, 'utf8').toString('latin1');
  if (!/[*?]/.test(p)) {
    const needle = p.toLowerCase();
    return (s) => s.toLowerCase().includes(needle);
  }
  const re = globRegExp(p.replace(/^\/+/, ''));
  // Without a '/', the pattern names an entry anywhere (as `find -name` does).
  const basenameOnly = !p.includes('/');
  return (s) => {
    return re.test(basenameOnly ? s.slice(s.lastIndexOf('/') + 1) : s);
  };
}

function globRegExp(p: string): RegExp {
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      // `**/` also matches no directory at all (a/**/b matches a/b).
      if (p[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}
