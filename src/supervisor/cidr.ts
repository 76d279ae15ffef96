import { isIP } from 'node:net';

/**
 * IPv4 and IPv6 networks written ADDRESS/PREFIX: pg_hba's allowed networks
 * (cluster create/join), the leader VIP and the network it must lie in.
 * Literal addresses only: nothing is ever looked up.
 */

/** The network assumed around an address when no prefix is given. */
export const DEFAULT_PREFIX = { 4: 24, 6: 64 } as const;

export interface Cidr {
  family: 4 | 6;
  /** The network's address bytes (host bits zero). */
  bytes: number[];
  prefix: number;
}

/**
 * Parses "ADDRESS/PREFIX" (IPv4 or IPv6). Host bits are cleared, so
 * "10.0.0.17/24" is the network 10.0.0.0/24. Throws an error that says what
 * is wrong and what is expected.
 */
export function parseCidr(text: string): Cidr {
  const expected = 'expected ADDRESS/PREFIX, e.g. 10.0.0.0/24 or fd00:1::/64';
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`"${text}" is not a CIDR: no /PREFIX (${expected}; one host is /32 or /128)`);
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) throw new Error(`"${text}" is not a CIDR: "${address}" is not a literal IP address (${expected})`);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new Error(`"${text}" is not a CIDR: the prefix length must be 0-${max} for IPv${family}`);
  const prefix = Number(prefixText);
  return { family: family as 4 | 6, bytes: maskBytes(addressBytes(address), prefix), prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.bytes)}/${c.prefix}`;
}

/** The network of `prefix` bits (default /24 or /64) that holds `address`. */
export function networkAround(address: string, prefix?: number): Cidr {
  const family = isIP(address);
  if (family === 0) throw new Error(`"${address}" is not a literal IP address`);
  const bits = prefix ?? DEFAULT_PREFIX[family as 4 | 6];
  return { family: family as 4 | 6, bytes: maskBytes(addressBytes(address), bits), prefix: bits };
}

export function cidrContains(c: Cidr, address: string): boolean {
  if (isIP(address) !== c.family) return false;
  return maskBytes(addressBytes(address), c.prefix).every((b, i) => b === c.bytes[i]);
}

/** Whether network `inner` lies wholly inside network `outer`. */
export function within(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix && maskBytes(inner.bytes, outer.prefix).every((b, i) => b === outer.bytes[i]);
}

function addressBytes(address: string): number[] {
  if (isIP(address) === 4) return address.split('.').map(Number);
  // An IPv6 address may end in dotted IPv4 (::ffff:10.0.0.1): rewrite it as two hex groups.
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & (0xff << (8 - keep)) & 0xff;
  });
}

function formatAddress(family: 4 | 6, bytes: number[]): string {
  if (family === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The URL parser writes IPv6 in its canonical compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/** One address on its network, as `ip addr add` takes it: 10.0.0.100/24. */
export interface InterfaceAddress {
  address: string;
  family: 4 | 6;
  prefix: number;
  network: Cidr;
}

/**
 * Parses "ADDRESS/PREFIX" keeping the address (where parseCidr keeps the
 * network). The address must be a host of its network: not the network's
 * own address nor, for IPv4, its broadcast address (both refused by
 * neighbours or ambiguous), except on /31, /32 and /127, /128 where every
 * address is a host.
 */
export function parseInterfaceAddress(text: string): InterfaceAddress {
  const network = parseCidr(text);
  const address = text.slice(0, text.indexOf('/'));
  const hostBits = (network.family === 4 ? 32 : 128) - network.prefix;
  if (hostBits >= 2) {
    const bytes = addressBytes(address);
    const hostMask = maskBytes(new Array<number>(bytes.length).fill(0xff), network.prefix).map((m) => ~m & 0xff);
    if (bytes.every((b, i) => (b & hostMask[i]!) === 0)) throw new Error(`"${text}" is the address of the network ${formatCidr(network)} itself, not of a host on it`);
    if (network.family === 4 && bytes.every((b, i) => (b & hostMask[i]!) === hostMask[i])) throw new Error(`"${text}" is the broadcast address of ${formatCidr(network)}, not a host on it`);
  }
  return { address, family: network.family, prefix: network.prefix, network };
}
