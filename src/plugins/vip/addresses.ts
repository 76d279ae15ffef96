import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cidrContains, parseCidr, parseInterfaceAddress, type InterfaceAddress } from '../../supervisor/cidr.js';
import { installRoot } from '../../supervisor/install-paths.js';

/**
 * How the leader VIP is put on and taken off this host's interface: the
 * port the LeaderVip drives (a fake in unit tests), and its implementation
 * over iproute2's `ip` and Debian's `arping` as child processes.
 *
 * Why child processes rather than netlink from Node: Node has no netlink
 * socket without a native addon, and an add or delete happens only when
 * leadership changes (plus one `ip addr show` every few seconds), so a
 * 5–10 ms child process costs nothing that matters; `ip` is what an
 * operator would type, so its errors read the same. What must not depend on
 * a child process starting in time is the removal at the fence deadline
 * when this process is stalled: the fence (native/fence/hasup-fence.c)
 * does that one over netlink itself.
 */
export interface Vip extends InterfaceAddress {
  /** The interface the address goes on. */
  interface: string;
  /** ADDRESS/PREFIX as configured. */
  text: string;
}

/** [cluster] vip and vip_interface (checked by the config schema already; throws on bad input all the same). */
export function parseVip(text: string, iface: string): Vip {
  return { ...parseInterfaceAddress(text), interface: iface, text };
}

export interface AddressManager {
  /** Why this host cannot carry the VIP (no such interface, not in its networks, no permission, no arping), or undefined. Changes nothing. */
  check(vip: Vip): Promise<string | undefined>;
  /** Whether the address is on the interface now. */
  present(vip: Vip): Promise<boolean>;
  /** Adds the address (already there is fine). */
  add(vip: Vip): Promise<void>;
  /** Removes the address (already gone is fine). */
  remove(vip: Vip): Promise<void>;
  /** Tells the neighbours the address is here now (gratuitous ARP, or unsolicited neighbour advertisements); stops at once when `signal` aborts. */
  announce(vip: Vip, signal: AbortSignal): Promise<void>;
}

/** Where Debian puts them; PATH may lack /usr/sbin under some service managers. */
const SBIN = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const COMMAND_TIMEOUT_MS = 3000;
/** Announcements per claim, this far apart: one can be lost, and a switch may learn the port late. */
const ANNOUNCE_COUNT = 3;
const ANNOUNCE_INTERVAL_MS = 200;
/** CAP_NET_ADMIN's bit in /proc/self/status CapEff. */
const CAP_NET_ADMIN = 12n;

export function findCommand(name: string): string | undefined {
  for (const dir of [...SBIN, ...(process.env.PATH ?? '').split(':').filter(Boolean)]) {
    const path = `${dir}/${name}`;
    if (existsSync(path)) return path;
  }
  return undefined;
}

interface IpAddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
}

/** hasup-ndsend as built by scripts/build-native.sh into the installation's dist/bin. */
export function defaultNdsendBinary(): string | undefined {
  const path = join(installRoot(), 'dist', 'bin', 'hasup-ndsend');
  return existsSync(path) ? path : undefined;
}

export class IpAddresses implements AddressManager {
  private readonly ip: string | undefined;
  private readonly arping: string | undefined;
  private readonly ndsend: string | undefined;

  constructor(opts: { ip?: string; arping?: string; ndsend?: string } = {}) {
    this.ip = opts.ip ?? findCommand('ip');
    this.arping = opts.arping ?? findCommand('arping');
    this.ndsend = opts.ndsend ?? defaultNdsendBinary();
  }

  async check(vip: Vip): Promise<string | undefined> {
    if (!this.ip) return 'iproute2\'s "ip" command is not installed (apt-get install iproute2)';
    if (vip.family === 4 && !this.arping) return 'arping is not installed, so the VIP could not be announced when it moves (apt-get install arping, or run scripts/bootstrap.sh)';
    if (vip.family === 6 && !this.ndsend) return 'hasup-ndsend is not built, so the VIP could not be announced when it moves (npm run build compiles it into dist/bin)';
    if (!hasNetAdmin()) return `no permission to add addresses to ${vip.interface}: hasup needs CAP_NET_ADMIN (run it as root, or give the unit AmbientCapabilities=CAP_NET_ADMIN)`;
    let addrs: IpAddrInfo[];
    try {
      addrs = await this.addresses(vip.interface);
    } catch (err) {
      return (err as Error).message;
    }
    const family = vip.family === 4 ? 'inet' : 'inet6';
    // Its own networks, not the VIP itself (a /32 left behind by a crashed leader names no network).
    const networks = addrs.filter((a) => a.family === family && a.local !== vip.address).map((a) => parseCidr(`${a.local}/${a.prefixlen}`));
    const home = networks.find((n) => n.prefix <= vip.prefix && cidrContains(n, vip.address));
    if (!home) {
      const list = addrs.filter((a) => a.family === family && a.local !== vip.address).map((a) => `${a.local}/${a.prefixlen}`);
      return `${vip.text} is outside the networks of ${vip.interface} (${list.length > 0 ? list.join(', ') : `it has no IPv${vip.family} address`}): neighbours on that link could not reach it`;
    }
    return undefined;
  }

  async present(vip: Vip): Promise<boolean> {
    const addrs = await this.addresses(vip.interface);
    return addrs.some((a) => a.local === vip.address);
  }

  async add(vip: Vip): Promise<void> {
    // nodad: an IPv6 VIP must be usable at once; a duplicate is what the lease rules out.
    const args = ['addr', 'add', `${vip.address}/${vip.prefix}`, 'dev', vip.interface, ...(vip.family === 6 ? ['nodad'] : [])];
    const r = await run(this.need(this.ip, 'ip'), args);
    if (r.code !== 0 && !/already assigned|File exists/i.test(r.stderr)) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  async remove(vip: Vip): Promise<void> {
    const args = ['addr', 'del', `${vip.address}/${vip.prefix}`, 'dev', vip.interface];
    const r = await run(this.need(this.ip, 'ip'), args);
    if (r.code !== 0 && !/not found|Cannot assign requested address/i.test(r.stderr)) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  /**
   * IPv4: unsolicited ARP requests (sender = target = the VIP, from this
   * interface's MAC), which make every neighbour that has the VIP in its
   * cache point it here. arping exits 1 when nothing answers, which is what
   * gratuitous ARP expects; only its complaints on stderr are failures.
   * IPv6: unsolicited neighbour advertisements with the override flag, to
   * all nodes, which do the same for neighbour caches (hasup-ndsend; the
   * kernel sends one only after duplicate address detection, which the VIP
   * skips).
   */
  async announce(vip: Vip, signal: AbortSignal): Promise<void> {
    const [name, path, args] =
      vip.family === 4
        ? ['arping', this.arping, ['-q', '-U', '-c', String(ANNOUNCE_COUNT), '-W', String(ANNOUNCE_INTERVAL_MS / 1000), '-i', vip.interface, '-S', vip.address, vip.address]]
        : ['hasup-ndsend', this.ndsend, ['-i', vip.interface, '-c', String(ANNOUNCE_COUNT), '-w', String(ANNOUNCE_INTERVAL_MS), vip.address]];
    const r = await run(this.need(path, name), args, signal);
    if (signal.aborted) return;
    const quietFailure = vip.family === 4 && r.code === 1;
    if ((r.code !== 0 && !quietFailure) || r.stderr.trim()) throw new Error(`${name} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }

  private async addresses(iface: string): Promise<IpAddrInfo[]> {
    const r = await run(this.need(this.ip, 'ip'), ['-j', 'addr', 'show', 'dev', iface]);
    if (r.code !== 0) {
      if (/does not exist/i.test(r.stderr)) throw new Error(`there is no network interface ${iface} on this host`);
      throw new Error(`ip addr show dev ${iface}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    const links = JSON.parse(r.stdout || '[]') as { addr_info?: IpAddrInfo[] }[];
    return links.flatMap((l) => l.addr_info ?? []);
  }

  private need(path: string | undefined, name: string): string {
    if (!path) throw new Error(`${name} is not installed`);
    return path;
  }
}

/** CAP_NET_ADMIN in this process's effective set (root has it unless dropped). */
function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n : process.getuid?.() === 0;
  } catch {
    return process.getuid?.() === 0;
  }
}

function run(file: string, args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: COMMAND_TIMEOUT_MS, signal, env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } }, (err, stdout, stderr) => {
      // An exit status is the command's answer (arping's 1 is); no status means it never ran or was killed.
      const exited = !err || typeof (err as { code?: unknown }).code === 'number';
      const code = !err ? 0 : exited ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr: !exited && !stderr ? err!.message : stderr });
    });
  });
}
