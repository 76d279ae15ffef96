/**
 * Events as Elastic Common Schema documents: what the shipper's inputs
 * (the supervisor's own pino log, children's output lines, the systemd
 * journal) and the metric collector turn into before they reach the spool.
 *
 * Every document carries @timestamp, message, log.level, host.name,
 * service.name, process.pid, event.dataset, and hasup.member.id/role, so one
 * query finds "what did PostgreSQL on node X say around 12:03".
 */
import type { LogEntry } from '../../supervisor/log-sink.js';

/** Who is speaking: the same for every event of this member. */
export interface EventOrigin {
  memberId: string;
  hostName: string;
  /** The member's advertised address. */
  hostIp?: string;
  /** The member's PostgreSQL role (leader, replica, unknown), read when each event is made. */
  role: () => string;
}

export type EcsDocument = Record<string, unknown> & { '@timestamp': string };

/** ECS's log.level values hasup uses (syslog's names, lower case). */
export type LogLevel = 'trace' | 'debug' | 'info' | 'notice' | 'warning' | 'error' | 'critical' | 'alert' | 'emergency';

const PINO_LEVELS: Record<number, LogLevel> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'critical' };
const SYSLOG_PRIORITIES: LogLevel[] = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'];

/** Words services put in front of their messages, and what they mean. */
const LEVEL_WORDS: Record<string, LogLevel> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  DEBUG1: 'debug',
  DEBUG2: 'debug',
  DEBUG3: 'debug',
  DEBUG4: 'debug',
  DEBUG5: 'debug',
  INFO: 'info',
  LOG: 'info',
  NOTICE: 'notice',
  WARN: 'warning',
  WARNING: 'warning',
  ERROR: 'error',
  FATAL: 'critical',
  CRIT: 'critical',
  CRITICAL: 'critical',
  PANIC: 'emergency',
};
// PostgreSQL: "... [123] LOG:  message"; Elasticsearch/log4j plain: "[...][WARN ][o.e.c]"; generic "level=warn".
const LEVEL_PATTERN = /(?:^|[\s[|])(TRACE|DEBUG[1-5]?|INFO|LOG|NOTICE|WARN(?:ING)?|ERROR|FATAL|CRIT(?:ICAL)?|PANIC)(?=[\s\]:|]|$)/;
const LEVEL_KEY_PATTERN = /\blevel=("?)(\w+)\1/i;

function normaliseLevel(value: unknown): LogLevel | undefined {
  if (typeof value === 'number') return PINO_LEVELS[value];
  if (typeof value !== 'string') return undefined;
  const word = LEVEL_WORDS[value.toUpperCase()];
  if (word) return word;
  const lower = value.toLowerCase();
  if (lower === 'dpanic') return 'critical';
  return SYSLOG_PRIORITIES.includes(lower as LogLevel) ? (lower as LogLevel) : undefined;
}

/**
 * The level a service line states: the "level" of a JSON line (etcd,
 * Elasticsearch), a level word near its start (PostgreSQL's "LOG:",
 * log4j's "[WARN ]"), or `level=...`. Lines that state none are info.
 */
export function inferLevel(line: string): LogLevel {
  if (line.startsWith('{')) {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      const level = normaliseLevel(parsed.level ?? parsed['log.level'] ?? parsed.severity ?? (parsed.log as { level?: unknown } | undefined)?.level);
      if (level) return level;
    } catch {
      // not JSON after all: read it as text
    }
  }
  const head = line.length > 160 ? line.slice(0, 160) : line;
  const word = LEVEL_PATTERN.exec(head);
  if (word) return LEVEL_WORDS[word[1]!]!;
  const keyed = LEVEL_KEY_PATTERN.exec(head);
  return normaliseLevel(keyed?.[2]) ?? 'info';
}

function base(origin: EventOrigin, time: number, message: string, level: LogLevel, service: string, dataset: string, pid: number | undefined): EcsDocument {
  return {
    '@timestamp': new Date(time).toISOString(),
    message,
    log: { level },
    host: origin.hostIp ? { name: origin.hostName, ip: origin.hostIp } : { name: origin.hostName },
    service: { name: service },
    ...(pid !== undefined && Number.isSafeInteger(pid) ? { process: { pid } } : {}),
    event: { dataset },
    hasup: { member: { id: origin.memberId, role: origin.role() } },
  };
}

/** A line a supervised child printed. */
export function childLineDocument(entry: LogEntry, origin: EventOrigin): EcsDocument {
  const doc = base(origin, entry.time, entry.line, inferLevel(entry.line), entry.service, `${entry.service}.log`, entry.pid);
  (doc.hasup as Record<string, unknown>).stream = entry.stream;
  if (entry.truncated) (doc.log as Record<string, unknown>).truncated = true;
  return doc;
}

/** pino's own fields, which the document states elsewhere or not at all. */
const PINO_OWN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'member', 'v']);
const MAX_LABELS = 32;
const MAX_LABEL_CHARS = 1024;

/**
 * One JSON line of the supervisor's pino log. Its extra fields become ECS
 * labels (keyword strings): a log call may put any shape there, and labels
 * can never make a mapping conflict that would reject the event.
 */
export function supervisorLogDocument(line: string, origin: EventOrigin): EcsDocument {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return base(origin, Date.now(), line.trimEnd(), 'info', 'hasup', 'hasup.log', process.pid);
  }
  const time = typeof parsed.time === 'number' ? parsed.time : Date.now();
  const level = normaliseLevel(parsed.level) ?? 'info';
  const pid = typeof parsed.pid === 'number' ? parsed.pid : process.pid;
  const doc = base(origin, time, typeof parsed.msg === 'string' ? parsed.msg : '', level, 'hasup', 'hasup.log', pid);
  const labels: Record<string, string> = {};
  let count = 0;
  for (const [key, value] of Object.entries(parsed)) {
    if (PINO_OWN_FIELDS.has(key) || value === undefined || value === null) continue;
    if (key === 'err' && typeof value === 'object') {
      const err = value as { message?: unknown; type?: unknown; stack?: unknown };
      doc.error = { message: String(err.message ?? ''), type: String(err.type ?? ''), ...(typeof err.stack === 'string' ? { stack_trace: err.stack } : {}) };
      continue;
    }
    if (count++ >= MAX_LABELS) break;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    labels[key.replace(/[.\s]/g, '_')] = text.length > MAX_LABEL_CHARS ? text.slice(0, MAX_LABEL_CHARS) : text;
  }
  if (count > 0) doc.labels = labels;
  return doc;
}

/** One entry of `journalctl -o json`. */
export function journalDocument(entry: Record<string, unknown>, origin: EventOrigin): EcsDocument {
  const micros = Number(entry.__REALTIME_TIMESTAMP);
  const time = Number.isFinite(micros) ? Math.floor(micros / 1000) : Date.now();
  const priority = Number(entry.PRIORITY);
  const level = SYSLOG_PRIORITIES[priority] ?? 'info';
  const unit = typeof entry._SYSTEMD_UNIT === 'string' ? entry._SYSTEMD_UNIT.replace(/\.service$/, '') : undefined;
  const ident = typeof entry.SYSLOG_IDENTIFIER === 'string' ? entry.SYSLOG_IDENTIFIER : undefined;
  const pid = Number(entry._PID);
  const doc = base(origin, time, journalText(entry.MESSAGE), level, unit ?? ident ?? 'journal', 'journald', Number.isSafeInteger(pid) ? pid : undefined);
  if (unit) doc.systemd = { unit: entry._SYSTEMD_UNIT };
  return doc;
}

/** journald gives a message with non-UTF-8 bytes as an array of numbers. */
function journalText(message: unknown): string {
  if (typeof message === 'string') return message;
  if (Array.isArray(message)) return Buffer.from(message.filter((b): b is number => typeof b === 'number')).toString('utf8');
  return message === undefined || message === null ? '' : String(message);
}

/**
 * A metric sample: Metricbeat's layout (metricset.name, event.module and
 * the module's own field tree, e.g. system.cpu.total.norm.pct).
 */
export function metricDocument(time: number, module: string, metricset: string, fields: Record<string, unknown>, origin: EventOrigin, service = module): EcsDocument {
  return {
    '@timestamp': new Date(time).toISOString(),
    host: origin.hostIp ? { name: origin.hostName, ip: origin.hostIp } : { name: origin.hostName },
    service: { name: service },
    event: { module, dataset: `${module}.${metricset}` },
    metricset: { name: metricset },
    hasup: { member: { id: origin.memberId, role: origin.role() } },
    ...fields,
  };
}
