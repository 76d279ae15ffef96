import { isIP } from 'node:net';

/**
 * A structural check of a candidate pg_hba.conf. PostgreSQL has no way to
 * parse an hba file other than the one in force (`postgres -C` stops
 * before reading it), so this catches what a rendered file can get wrong
 * — mostly a bad CIDR in hba.allowed_cidrs — before it is installed; after
 * a reload, verifyReload asks the server itself (pg_hba_file_rules).
 */
const CONNECTION_TYPES = new Set(['local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc']);
const METHODS = new Set(['trust', 'reject', 'scram-sha-256', 'md5', 'password', 'gss', 'sspi', 'ident', 'peer', 'pam', 'ldap', 'radius', 'cert']);
const ADDRESS_KEYWORDS = new Set(['all', 'samehost', 'samenet']);

/** Splits a line into fields the way PostgreSQL does for the simple cases: whitespace, "quoted" fields, # comments. */
function fields(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"]|"")*)"|([^\s"#]+)|(#.*)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    if (m[3] !== undefined) break;
    out.push(m[1] ?? m[2]!);
  }
  return out;
}

function addressError(address: string, mask: string | undefined): string | undefined {
  if (ADDRESS_KEYWORDS.has(address)) return undefined;
  const slash = address.indexOf('/');
  if (slash >= 0) {
    const ip = address.slice(0, slash);
    const bits = address.slice(slash + 1);
    const family = isIP(ip);
    if (family === 0) return `"${ip}" is not an IP address`;
    const max = family === 4 ? 32 : 128;
    if (!/^\d+$/.test(bits) || Number(bits) > max) return `"/${bits}" is not a prefix length for IPv${family}`;
    return undefined;
  }
  const family = isIP(address);
  if (family !== 0) {
    if (mask === undefined || isIP(mask) !== family) return `"${address}" needs a /prefix or a netmask`;
    return undefined;
  }
  // A host name (or .domain suffix): PostgreSQL resolves it per connection.
  return /^\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(address) ? undefined : `"${address}" is not an address, host name or keyword`;
}

/** Problems found, one per bad line ("line N: ..."); empty when the file looks sound. */
export function checkHba(text: string): string[] {
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const f = fields(raw);
    if (f.length === 0) return;
    const line = `line ${i + 1}`;
    const [type, , , ...rest] = f;
    if (!CONNECTION_TYPES.has(type!)) return void problems.push(`${line}: unknown connection type "${type}"`);
    if (f.length < 4) return void problems.push(`${line}: too few fields`);
    let methodAt = 0;
    if (type !== 'local') {
      if (rest.length < 2) return void problems.push(`${line}: too few fields`);
      const address = rest[0]!;
      const maybeMask = isIP(rest[1]!) !== 0 ? rest[1] : undefined;
      const err = addressError(address, maybeMask);
      if (err) return void problems.push(`${line}: ${err}`);
      methodAt = maybeMask !== undefined && !address.includes('/') ? 2 : 1;
    }
    const method = rest[methodAt];
    if (method === undefined) return void problems.push(`${line}: no authentication method`);
    if (!METHODS.has(method)) problems.push(`${line}: unknown authentication method "${method}"`);
  });
  return problems;
}
