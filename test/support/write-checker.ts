/**
 * A write-checking client for failover tests and the failover benchmark.
 * Writers insert rows with unique ids, each in its own transaction, every
 * `intervalMs`, through one target each (HAProxy, or a node directly), and
 * record every acknowledged id with the send/ack times and the server that
 * committed it (inet_server_addr()). Afterwards:
 *
 *   missing()   acknowledged ids that are not in the table (lost writes)
 *   overlaps()  two servers accepting writes at the same time (split brain):
 *               acknowledged writes, from all writers, are grouped into runs
 *               of one server in ack order; each run is a window from its
 *               first write's send time to its last write's ack time, and no
 *               two windows of different servers may intersect
 *   firstAckAfter(t)  when writes resumed after an event (failover time)
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface WriteTarget {
  /** Names the writer in results (e.g. "haproxy", "node1"). */
  name: string;
  host: string;
  port: number;
  /**
   * Connections writing side by side under this one name, as an
   * application's pool does (1 unless given). The target is unavailable when
   * none of them gets a write through: one connection stalled in TCP
   * retransmission backoff (a lossy link) is not an outage of the cluster.
   */
  connections?: number;
  /**
   * The cluster CA (PEM) under TLS (docs/tls.md): sessions use TLS and
   * verify the server's certificate; pg_hba takes remote sessions over TLS
   * only. Absent: no TLS.
   */
  ca?: string;
  /**
   * false: check the chain but not the name. For a load balancer, whose
   * address no member certificate names unless [tls] extra_sans adds it.
   */
  verifyHost?: boolean;
  /**
   * The address moves between nodes (the leader VIP): inet_server_addr() is
   * that address whichever node took the write, so this writer's acks count
   * for missing() but cannot tell servers apart in windows()/overlaps(); the
   * writers straight at each node do that.
   */
  movingAddress?: boolean;
}

export interface Ack {
  id: string;
  writer: string;
  /** Address of the PostgreSQL server that committed it. */
  server: string;
  /** Date.now() when the statement was sent and when its answer came back. */
  sentAt: number;
  ackedAt: number;
}

export interface AcceptWindow {
  server: string;
  from: number;
  to: number;
  writes: number;
}

export interface WriteCheckerOptions {
  user: string;
  password: string;
  database?: string;
  table?: string;
  intervalMs?: number;
  /** Per statement and per connection attempt. */
  timeoutMs?: number;
}

export class WriteChecker {
  readonly acks: Ack[] = [];
  readonly failures = new Map<string, number>();
  private readonly table: string;
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly prefix = randomBytes(4).toString('hex');
  private seq = 0;
  /** Writers whose server address names no one node (WriteTarget.movingAddress). */
  private readonly movingWriters = new Set<string>();

  constructor(private readonly opts: WriteCheckerOptions) {
    this.table = opts.table ?? 'hasup_write_check';
    if (!/^[a-z_][a-z0-9_]*$/.test(this.table)) throw new Error(`bad table name ${this.table}`);
  }

  private client(t: Pick<WriteTarget, 'host' | 'port' | 'ca' | 'verifyHost'>): pg.Client {
    const timeout = this.opts.timeoutMs ?? 2000;
    const ssl = t.ca ? { ca: t.ca, ...(t.verifyHost === false ? { checkServerIdentity: () => undefined } : {}) } : false;
    const client = new pg.Client({
      ssl,
      host: t.host,
      port: t.port,
      user: this.opts.user,
      password: this.opts.password,
      database: this.opts.database ?? 'postgres',
      connectionTimeoutMillis: timeout,
      statement_timeout: timeout,
      query_timeout: timeout,
      application_name: 'write-checker',
    });
    client.on('error', () => undefined);
    return client;
  }

  /** Creates the table through `target` (retrying until it is writable or `timeoutMs` passes). */
  async setup(target: WriteTarget, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const c = this.client(target);
      try {
        await c.connect();
        await c.query(`CREATE TABLE IF NOT EXISTS ${this.table} (id text PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
        return;
      } catch (err) {
        last = err;
      } finally {
        await c.end().catch(() => undefined);
      }
      await sleep(200);
    }
    throw new Error(`cannot create ${this.table} through ${target.name}: ${(last as Error)?.message}`);
  }

  start(targets: WriteTarget[]): void {
    if (this.running) throw new Error('already running');
    this.running = true;
    for (const t of targets) if (t.movingAddress) this.movingWriters.add(t.name);
    this.loops = targets.flatMap((t) => Array.from({ length: t.connections ?? 1 }, () => this.writeLoop(t)));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async writeLoop(t: WriteTarget): Promise<void> {
    const interval = this.opts.intervalMs ?? 20;
    let client: pg.Client | null = null;
    while (this.running) {
      const started = Date.now();
      try {
        if (!client) {
          client = this.client(t);
          await client.connect();
        }
        const id = `${this.prefix}-${t.name}-${++this.seq}`;
        const sentAt = Date.now();
        const r = await client.query<{ server: string }>(`INSERT INTO ${this.table} (id, writer) VALUES ($1, $2) RETURNING host(inet_server_addr()) AS server`, [id, t.name]);
        this.acks.push({ id, writer: t.name, server: r.rows[0]?.server ?? '?', sentAt, ackedAt: Date.now() });
      } catch (err) {
        const key = `${t.name}: ${(err as Error).message.split('\n')[0]}`;
        this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
        const broken = client;
        client = null;
        if (broken) await endQuietly(broken);
      }
      const wait = interval - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
    if (client) await endQuietly(client);
  }

  /** The first acknowledged write sent at or after `t` (optionally by one writer, on one server). */
  firstAckAfter(t: number, writer?: string, server?: string): Ack | undefined {
    return this.acks
      .filter((a) => a.sentAt >= t && (writer === undefined || a.writer === writer) && (server === undefined || a.server === server))
      .sort((a, b) => a.ackedAt - b.ackedAt)[0];
  }

  /** Acknowledged ids missing from the table, read through `target` (the current leader). */
  async missing(target: WriteTarget): Promise<string[]> {
    const c = this.client(target);
    await c.connect();
    try {
      const ids = this.acks.map((a) => a.id);
      const found = new Set<string>();
      for (let i = 0; i < ids.length; i += 5000) {
        const r = await c.query<{ id: string }>(`SELECT id FROM ${this.table} WHERE id = ANY($1::text[])`, [ids.slice(i, i + 5000)]);
        for (const row of r.rows) found.add(row.id);
      }
      return ids.filter((id) => !found.has(id));
    } finally {
      await endQuietly(c);
    }
  }

  /** Windows during which each server accepted writes, in time order. */
  windows(): AcceptWindow[] {
    const sorted = this.acks.filter((a) => !this.movingWriters.has(a.writer)).sort((a, b) => a.ackedAt - b.ackedAt);
    const out: AcceptWindow[] = [];
    for (const a of sorted) {
      const last = out[out.length - 1];
      if (last && last.server === a.server) {
        last.from = Math.min(last.from, a.sentAt);
        last.to = Math.max(last.to, a.ackedAt);
        last.writes++;
      } else out.push({ server: a.server, from: a.sentAt, to: a.ackedAt, writes: 1 });
    }
    return out;
  }

  /** Pairs of windows of different servers that intersect: two nodes took writes at the same time. */
  overlaps(): Array<[AcceptWindow, AcceptWindow]> {
    const w = this.windows();
    const out: Array<[AcceptWindow, AcceptWindow]> = [];
    for (let i = 0; i < w.length; i++) {
      for (let j = i + 1; j < w.length; j++) {
        if (w[i]!.server !== w[j]!.server && w[i]!.from <= w[j]!.to && w[j]!.from <= w[i]!.to) out.push([w[i]!, w[j]!]);
      }
    }
    return out;
  }

  /** Longest stretch without an acknowledged write through `writer`, after `from` (and up to `to`, counting the window's edges). */
  longestGap(writer: string, from: number, to?: number): number {
    const inside = this.acks.filter((a) => a.writer === writer && a.ackedAt >= from && (to === undefined || a.ackedAt <= to)).map((a) => a.ackedAt).sort((a, b) => a - b);
    // With a closed window its edges count too: no write at all between `from` and `to` is one gap.
    const times = to === undefined ? inside : [from, ...inside, to];
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
    return gap;
  }
}

async function endQuietly(c: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([c.end().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 500)))]);
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
