/**
 * What `pgbackrest info --output=json` (2.45) says about the stanza, in
 * hasup's own types: the backups in every repository, the range of WAL
 * each repository holds, and the stanza's status. Sizes are bytes, times
 * are Dates. The JSON is pgBackRest's, read defensively: a field of the
 * wrong type is an error naming it, not an undefined that travels on.
 */
export type BackupType = 'full' | 'diff' | 'incr';
export const BACKUP_TYPES: readonly BackupType[] = ['full', 'diff', 'incr'];

export interface BackupInfo {
  /** pgBackRest's label, e.g. 20240101-120000F (incr and diff: FULL_LABEL_DATE-TIMEI/D). */
  label: string;
  type: BackupType;
  /** The repository it is in (1 or 2). */
  repo: number;
  startedAt: Date;
  stoppedAt: Date;
  /** The size of the database when it was backed up. */
  databaseSize: number;
  /** What this backup copied from the database (all of it for a full backup, the changes otherwise). */
  backupSize: number;
  /** The backup and what it needs of earlier ones, as stored (compressed) in the repository. */
  repoSetSize: number;
  /** This backup alone as stored in the repository. */
  repoBackupSize: number;
  /** The first and last WAL segments needed to make the backup consistent. */
  walStart: string | null;
  walStop: string | null;
  lsnStart: string | null;
  lsnStop: string | null;
  /** The backup it depends on (diff, incr), or null. */
  prior: string | null;
  /** pgBackRest found a page checksum error in a data file while copying it. */
  error: boolean;
  /** Key/value annotations stored with the backup (hasup's say where it was taken: standby.ts); absent when it has none. */
  annotations?: Record<string, string>;
}

export interface ArchiveRange {
  repo: number;
  /** PostgreSQL version and history id, e.g. "15-1". */
  id: string;
  /** The oldest and newest WAL segment in the repository; null when none is there yet. */
  min: string | null;
  max: string | null;
}

export interface RepoStatus {
  key: number;
  cipher: string;
  code: number;
  message: string;
}

export interface StanzaInfo {
  name: string;
  /** The stanza exists in at least one repository (stanza-create has run). */
  exists: boolean;
  /** 0 ok; 1 missing stanza path; 2 no valid backups; 3 missing stanza data; 4 different across repos; 99 other. */
  status: { code: number; message: string };
  /** A backup (or expire) holds this member's backup lock now. */
  backupRunning: boolean;
  /** PostgreSQL's system identifier (a 64-bit number, kept as text: JSON numbers lose its low digits). */
  systemId: string | null;
  pgVersion: string | null;
  repos: RepoStatus[];
  /** Oldest first, as pgBackRest lists them. */
  backups: BackupInfo[];
  archives: ArchiveRange[];
}

export class InfoParseError extends Error {}

/** STATUS_CODE_MISSING_STANZA_PATH in pgBackRest's info command. */
const MISSING_STANZA_PATH = 1;

/**
 * Parses the JSON of `info --stanza=NAME --output=json`. PostgreSQL's
 * system-id is a 64-bit integer that pgBackRest writes as a bare number;
 * it is turned into a string before JSON.parse sees it.
 */
export function parseInfo(json: string, stanza: string): StanzaInfo {
  let data: unknown;
  try {
    data = JSON.parse(json.replace(/("system-id"\s*:\s*)(\d+)/g, '$1"$2"'));
  } catch (err) {
    throw new InfoParseError(`pgbackrest info did not print JSON (${(err as Error).message}); output began: ${JSON.stringify(json.slice(0, 120))}`);
  }
  if (!Array.isArray(data)) throw new InfoParseError('pgbackrest info: expected a list of stanzas');
  const raw = data.find((s) => isObject(s) && s.name === stanza);
  if (!isObject(raw)) throw new InfoParseError(`pgbackrest info: stanza "${stanza}" is not in the answer`);
  const r = new Reader(`stanza ${stanza}`);
  const status = r.obj(raw, 'status');
  const lock = isObject(status.lock) && isObject(status.lock.backup) ? status.lock.backup : {};
  const dbs = r.list(raw, 'db').map((d, i) => r.asObj(d, `db[${i}]`));
  const current = dbs[dbs.length - 1];
  const code = r.num(status, 'code');
  const repos = r.list(raw, 'repo').map((x, i) => {
    const repo = new Reader(`repo[${i}]`);
    const o = repo.asObj(x, 'the entry');
    const st = repo.obj(o, 'status');
    return { key: repo.num(o, 'key'), cipher: repo.str(o, 'cipher'), code: repo.num(st, 'code'), message: repo.str(st, 'message') };
  });
  return {
    name: stanza,
    exists: code !== MISSING_STANZA_PATH && repos.some((x) => x.code !== MISSING_STANZA_PATH),
    status: { code, message: r.str(status, 'message') },
    backupRunning: lock.held === true,
    systemId: current && current['system-id'] !== undefined ? String(current['system-id']) : null,
    pgVersion: current && typeof current.version === 'string' ? current.version : null,
    repos,
    backups: r.list(raw, 'backup').map((b, i) => parseBackup(b, i)),
    archives: r.list(raw, 'archive').map((a, i) => {
      const ar = new Reader(`archive[${i}]`);
      const o = ar.asObj(a, 'the entry');
      return { repo: ar.num(ar.obj(o, 'database'), 'repo-key'), id: ar.str(o, 'id'), min: ar.strOrNull(o, 'min'), max: ar.strOrNull(o, 'max') };
    }),
  };
}

function parseBackup(b: unknown, i: number): BackupInfo {
  const r = new Reader(`backup[${i}]`);
  const o = r.asObj(b, 'the entry');
  const label = r.str(o, 'label');
  const type = r.str(o, 'type');
  if (!(BACKUP_TYPES as readonly string[]).includes(type)) throw new InfoParseError(`pgbackrest info: backup ${label}: unknown type "${type}"`);
  const info = r.obj(o, 'info');
  const repo = r.obj(info, 'repository');
  const time = r.obj(o, 'timestamp');
  const archive = isObject(o.archive) ? o.archive : {};
  const lsn = isObject(o.lsn) ? o.lsn : {};
  return {
    label,
    type: type as BackupType,
    repo: r.num(r.obj(o, 'database'), 'repo-key'),
    startedAt: new Date(r.num(time, 'start') * 1000),
    stoppedAt: new Date(r.num(time, 'stop') * 1000),
    databaseSize: r.num(info, 'size'),
    backupSize: r.num(info, 'delta'),
    repoSetSize: r.num(repo, 'size'),
    repoBackupSize: r.num(repo, 'delta'),
    walStart: r.strOrNull(archive, 'start'),
    walStop: r.strOrNull(archive, 'stop'),
    lsnStart: r.strOrNull(lsn, 'start'),
    lsnStop: r.strOrNull(lsn, 'stop'),
    prior: r.strOrNull(o, 'prior'),
    error: o.error === true,
    ...annotationsOf(o.annotation),
  };
}

/** pgBackRest's `annotation` object (string values only), as the optional field. */
function annotationsOf(v: unknown): { annotations?: Record<string, string> } {
  if (!isObject(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return Object.keys(out).length > 0 ? { annotations: out } : {};
}

/** Reads typed fields, naming the field and where it is when one is not what pgBackRest documents. */
class Reader {
  constructor(private readonly where: string) {}
  private fail(key: string, want: string, v: unknown): never {
    throw new InfoParseError(`pgbackrest info: ${this.where}: "${key}" should be ${want}, got ${JSON.stringify(v)}`);
  }
  asObj(v: unknown, what: string): Record<string, unknown> {
    return isObject(v) ? v : this.fail(what, 'an object', v);
  }
  obj(o: Record<string, unknown>, key: string): Record<string, unknown> {
    return this.asObj(o[key], key);
  }
  list(o: Record<string, unknown>, key: string): unknown[] {
    const v = o[key];
    if (v === undefined) return [];
    return Array.isArray(v) ? v : this.fail(key, 'a list', v);
  }
  num(o: Record<string, unknown>, key: string): number {
    const v = o[key];
    return typeof v === 'number' && Number.isFinite(v) ? v : this.fail(key, 'a number', v);
  }
  str(o: Record<string, unknown>, key: string): string {
    const v = o[key];
    return typeof v === 'string' ? v : this.fail(key, 'a string', v);
  }
  strOrNull(o: Record<string, unknown>, key: string): string | null {
    const v = o[key];
    if (v === null || v === undefined) return null;
    return typeof v === 'string' ? v : this.fail(key, 'a string or null', v);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The newest archived WAL segment over all repositories (segment names sort by position), or null. */
export function newestArchived(info: StanzaInfo): string | null {
  let max: string | null = null;
  for (const a of info.archives) if (a.max !== null && (max === null || a.max > max)) max = a.max;
  return max;
}

export interface BackupProgress {
  /** A backup or expire holds this member's backup lock. */
  running: boolean;
  /** How much of the backup's files are copied, 0-100, once pgBackRest says. */
  percent?: number;
}

/**
 * Progress from the text form of `info` (2.45 gives the percentage only
 * there, not in JSON). The stanza's status line says it, after the status
 * or inside its parentheses: "status: ok (backup/expire running - 12.34%
 * complete)", "status: error (no valid backups, backup/expire running)".
 */
export function parseProgress(text: string): BackupProgress {
  const m = /^\s*status: .*\bbackup\/expire running(?: - (\d+(?:\.\d+)?)% complete)?\)/m.exec(text);
  if (!m) return { running: false };
  return m[1] === undefined ? { running: true } : { running: true, percent: Number(m[1]) };
}
