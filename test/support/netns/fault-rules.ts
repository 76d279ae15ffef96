/**
 * The nftables table that injects one node's network faults, rendered from
 * what the test asked for. The whole table is replaced in one `nft -f`
 * transaction each time, so rules never pile up and a fault is never half on.
 * It lives inside the node's own namespace: the host and other nodes are
 * untouched, and deleting the namespace deletes it.
 */
export const FAULT_TABLE = 'hasup_faults';

export interface NodeFaults {
  /** Drop everything except loopback (the node's cable is pulled). */
  isolated: boolean;
  /** Addresses this node can neither reach nor hear from (a partition). */
  blocked: Set<string>;
  /** Percentage of packets dropped in each direction, 0-99. */
  lossPct: number;
}

export function noFaults(): NodeFaults {
  return { isolated: false, blocked: new Set(), lossPct: 0 };
}

export function hasFaults(f: NodeFaults): boolean {
  return f.isolated || f.blocked.size > 0 || f.lossPct > 0;
}

/**
 * A script for `nft -f -`: creating the table first makes the delete valid
 * whether or not it existed. Priority -10 runs before any other filter.
 */
export function renderFaultScript(f: NodeFaults): string {
  const lines = [`table inet ${FAULT_TABLE} {}`, `delete table inet ${FAULT_TABLE}`];
  if (!hasFaults(f)) return `${lines.join('\n')}\n`;
  const chain = (name: 'input' | 'output') => {
    const dir = name === 'input' ? { ifname: 'iifname', addr: 'saddr' } : { ifname: 'oifname', addr: 'daddr' };
    const rules = [`${dir.ifname} "lo" accept`];
    // Counters let a test prove the fault really dropped traffic.
    if (f.isolated) rules.push('counter drop');
    if (f.blocked.size > 0) rules.push(`ip ${dir.addr} { ${[...f.blocked].sort().join(', ')} } counter drop`);
    if (f.lossPct > 0) rules.push(`numgen random mod 100 < ${f.lossPct} counter drop`);
    return [`  chain ${name} {`, `    type filter hook ${name} priority -10; policy accept;`, ...rules.map((r) => `    ${r}`), '  }'];
  };
  lines.push(`table inet ${FAULT_TABLE} {`, ...chain('input'), ...chain('output'), '}');
  return `${lines.join('\n')}\n`;
}

/** Sum of the drop counters in `nft -j list table inet FAULT_TABLE` output. */
export function droppedPacketsFromJson(json: string): number {
  const doc = JSON.parse(json) as { nftables?: Array<{ rule?: { expr?: Array<{ counter?: { packets: number } }> } }> };
  let total = 0;
  for (const item of doc.nftables ?? []) for (const e of item.rule?.expr ?? []) total += e.counter?.packets ?? 0;
  return total;
}
