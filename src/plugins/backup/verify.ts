import type { BackupInfo } from './info.js';

/**
 * What `pgbackrest verify --output=text --verbose` (2.45) found. The command
 * exits 0 whether or not the repository is sound: its verdict is the
 * "status:" line of the report on stdout, and the files at fault are named
 * only in its log lines ("invalid checksum '<file>'"), which hasup asks for
 * on stderr (--log-level-stderr=detail). Paths are relative to the stanza's
 * backup or archive directory in the repository.
 *
 * 2.45 checks every file against the checksum and size it was stored with,
 * but two things it does not judge (its source says the final
 * reconciliation is still to do): a gap in the archived WAL (it only logs
 * the contiguous ranges it found, at detail level), and backups that
 * depend on an invalid one (an incremental whose full backup has a bad
 * file is "valid"). hasup adds both: a gap makes the report fail, and
 * `unusable` lists every backup that is invalid or depends on one.
 */
export type FileFault = 'file missing' | 'invalid checksum' | 'invalid size' | 'invalid result';

export interface VerifyProblem {
  file: string;
  fault: FileFault;
  /** For "invalid result": pgBackRest's error code and message. */
  detail?: string;
}

export interface VerifyCounts {
  checked: number;
  valid: number;
  missing: number;
  checksumInvalid: number;
  sizeInvalid: number;
  other: number;
}

export interface WalRange {
  archiveId: string;
  start: string;
  stop: string;
}

export interface WalGap {
  archiveId: string;
  /** The last segment before the gap and the first one after it. */
  after: string;
  before: string;
}

export interface VerifyReport {
  /** pgBackRest's verdict ("status: ok") and no gap in the archived WAL. */
  ok: boolean;
  /** pgBackRest's own verdict alone. */
  pgbackrestOk: boolean;
  archives: Array<{ id: string } & VerifyCounts>;
  /** status: valid, invalid, manifest missing or in-progress (skipped). */
  backups: Array<{ label: string; status: string } & VerifyCounts>;
  /** Every file pgBackRest reported, in its order. */
  problems: VerifyProblem[];
  /** The contiguous runs of archived WAL pgBackRest found. */
  walRanges: WalRange[];
  walGaps: WalGap[];
  /** Backups that are invalid or depend on one (filled by withDependents). */
  unusable: string[];
  /** Report and log lines that are neither a count, a file nor a range (e.g. "No usable backup.info file"). */
  messages: string[];
}

export class VerifyParseError extends Error {}

const FILE_LINE = /\b(file missing|invalid checksum|invalid size) '([^']+)'/;
const RESULT_LINE = /\binvalid result (\S+): (\[\d+\] .*)$/;
const RANGE_LINE = /\barchiveId: ([^,]+), wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})/;
const COUNT_KEYS = { missing: 'missing', 'checksum invalid': 'checksumInvalid', 'size invalid': 'sizeInvalid', other: 'other' } as const;

/** Parses verify's report (stdout) and its log lines (stderr, detail level). */
export function parseVerify(stdout: string, stderr: string): VerifyReport {
  const status = /^status: (\S+)/m.exec(stdout);
  if (!status) throw new VerifyParseError(`pgbackrest verify printed no "status:" line; output began: ${JSON.stringify(stdout.slice(0, 160))}`);
  const pgbackrestOk = status[1] === 'ok';
  const report: VerifyReport = { ok: pgbackrestOk, pgbackrestOk, archives: [], backups: [], problems: [], walRanges: [], walGaps: [], unusable: [], messages: [] };
  let last: VerifyCounts | undefined;
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (line === '' || /^(stanza|status): /.test(line)) continue;
    const archive = /^archiveId: ([^,]+), total WAL checked: (\d+), total valid WAL: (\d+)$/.exec(line);
    const backup = /^backup: ([^,]+), status: ([^,]+), total files checked: (\d+), total valid files: (\d+)$/.exec(line);
    if (archive) {
      const entry = { id: archive[1]!, ...counts(Number(archive[2]), Number(archive[3])) };
      report.archives.push(entry);
      last = entry;
    } else if (backup) {
      const entry = { label: backup[1]!, status: backup[2]!, ...counts(Number(backup[3]), Number(backup[4])) };
      report.backups.push(entry);
      last = entry;
    } else if (last && /^(missing|checksum invalid|size invalid|other): \d+/.test(line)) {
      for (const [, key, n] of line.matchAll(/(missing|checksum invalid|size invalid|other): (\d+)/g)) last[COUNT_KEYS[key as keyof typeof COUNT_KEYS]] = Number(n);
    } else {
      report.messages.push(line);
    }
  }
  for (const line of stderr.split('\n')) {
    const file = FILE_LINE.exec(line);
    const result = RESULT_LINE.exec(line);
    const range = RANGE_LINE.exec(line);
    if (file) report.problems.push({ fault: file[1] as FileFault, file: file[2]! });
    else if (result) report.problems.push({ fault: 'invalid result', file: result[1]!, detail: result[2]! });
    else if (range) report.walRanges.push({ archiveId: range[1]!, start: range[2]!, stop: range[3]! });
    else if (/^(WARN|DETAIL): /.test(line)) report.messages.push(line.replace(/^(WARN|DETAIL): /, ''));
  }
  report.walGaps = walGaps(report.walRanges);
  report.ok = pgbackrestOk && report.walGaps.length === 0;
  return report;
}

function counts(checked: number, valid: number): VerifyCounts {
  return { checked, valid, missing: 0, checksumInvalid: 0, sizeInvalid: 0, other: 0 };
}

/**
 * WAL segments are numbered across timelines: a name is timeline (8 hex
 * digits), log (8) and segment (8), and with PostgreSQL's 16 MB segments a
 * log holds 0x100 of them. A new timeline starts at the segment where the
 * old one was left, so ranges on different timelines that meet or overlap
 * are no gap.
 */
const SEGMENTS_PER_LOG = 0x100n;

export function segmentNumber(name: string): bigint {
  return BigInt(`0x${name.slice(8, 16)}`) * SEGMENTS_PER_LOG + BigInt(`0x${name.slice(16, 24)}`);
}

/** The holes between consecutive ranges of one archive id. */
export function walGaps(ranges: WalRange[]): WalGap[] {
  const gaps: WalGap[] = [];
  const byArchive = new Map<string, WalRange[]>();
  for (const r of ranges) byArchive.set(r.archiveId, [...(byArchive.get(r.archiveId) ?? []), r]);
  for (const [archiveId, list] of byArchive) {
    const sorted = [...list].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let reach = sorted[0] ? segmentNumber(sorted[0].stop) : 0n;
    let reachName = sorted[0]?.stop ?? '';
    for (const r of sorted.slice(1)) {
      if (segmentNumber(r.start) > reach + 1n) gaps.push({ archiveId, after: reachName, before: r.start });
      if (segmentNumber(r.stop) >= reach) {
        reach = segmentNumber(r.stop);
        reachName = r.stop;
      }
    }
  }
  return gaps;
}

/**
 * Adds to `unusable` every backup that is invalid, needs WAL that is in a
 * gap, or depends (through its prior backups) on such a one.
 */
export function withDependents(report: VerifyReport, backups: BackupInfo[]): VerifyReport {
  const bad = new Set(report.backups.filter((b) => b.status === 'invalid' || b.status === 'manifest missing').map((b) => b.label));
  for (const b of backups) {
    if (b.walStart === null || b.walStop === null) continue;
    const from = segmentNumber(b.walStart);
    const to = segmentNumber(b.walStop);
    if (report.walGaps.some((g) => from <= segmentNumber(g.before) - 1n && to > segmentNumber(g.after))) bad.add(b.label);
  }
  const byLabel = new Map(backups.map((b) => [b.label, b]));
  const unusable = (label: string, seen = new Set<string>()): boolean => {
    if (bad.has(label)) return true;
    const prior = byLabel.get(label)?.prior;
    if (!prior || seen.has(label)) return false;
    seen.add(label);
    return unusable(prior, seen);
  };
  const labels = new Set([...report.backups.map((b) => b.label), ...backups.map((b) => b.label)]);
  return { ...report, unusable: [...labels].filter((l) => unusable(l)).sort() };
}

/** One line for an operator: the verdict and what is at fault. */
export function describeVerify(r: VerifyReport): string {
  if (r.ok) {
    const files = r.backups.reduce((n, b) => n + b.checked, 0);
    const wal = r.archives.reduce((n, a) => n + a.checked, 0);
    return `repository verified: ${r.backups.length} backup(s), ${files} file(s), ${wal} WAL segment(s), no fault`;
  }
  const parts = [
    ...r.backups.filter((b) => b.status === 'invalid' || b.status === 'manifest missing').map((b) => `backup ${b.label} is ${b.status}`),
    ...r.problems.map((p) => `${p.fault} ${p.file}${p.detail ? ` (${p.detail})` : ''}`),
    ...r.walGaps.map((g) => `WAL missing between ${g.after} and ${g.before} (archive ${g.archiveId})`),
    ...(r.unusable.length > 0 ? [`unusable backups: ${r.unusable.join(', ')}`] : []),
  ];
  return `repository verify failed: ${parts.join('; ') || r.messages.join('; ') || 'pgBackRest reported errors'}`;
}
