import { Cron } from 'croner';

/**
 * A backup schedule: a cron expression of five fields (minute, hour, day
 * of the month, month, day of the week), evaluated in UTC, or one of the
 * nicknames (@hourly, @daily, @weekly, @monthly, @yearly). Parsing and the
 * fire times are croner's; this file only narrows what it accepts: no
 * seconds field (a backup per second is never meant) and no expression
 * that never fires (30 February), so a typo is refused when the config is
 * applied rather than found when no backup was taken.
 */
export interface CronSchedule {
  readonly expression: string;
  /** The first fire time strictly after `after` (ms since the epoch), or null when there is none. */
  next(after: number): number | null;
}

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
/** Far enough to find the next fire time of any expression that fires at all (29 February every four years, with a skipped leap year). */
const NEVER_AFTER_MS = 9 * 366 * 86_400_000;

/** The schedule, or why the expression is refused (a sentence without the key: the schema adds it). */
export function parseCron(expression: string): CronSchedule | { problem: string } {
  const text = expression.trim();
  const fields = text.split(/\s+/);
  if (!NICKNAMES.has(text.toLowerCase()) && fields.length !== 5) {
    return { problem: `must be a cron expression of 5 fields (minute hour day-of-month month day-of-week, in UTC) or "" for none, got ${fields.length} field(s) in ${JSON.stringify(expression)}` };
  }
  let cron: Cron;
  try {
    cron = new Cron(text, { timezone: 'UTC', paused: true });
  } catch (err) {
    // croner's messages start with its class name ("CronPattern: Invalid value for minute: 60").
    const why = (err as Error).message.replace(/^CronPattern:\s*/, '');
    return { problem: `is not a valid cron expression (${why}): ${JSON.stringify(expression)}` };
  }
  const next = (after: number): number | null => {
    const d = cron.nextRun(new Date(after));
    return d ? d.getTime() : null;
  };
  const probe = Date.UTC(2000, 0, 1);
  const first = next(probe);
  if (first === null || first - probe > NEVER_AFTER_MS) return { problem: `never fires: ${JSON.stringify(expression)}` };
  return { expression: text, next };
}

/** For the settings schema's check hook: undefined when "" or a valid expression. */
export function cronProblem(expression: string): string | undefined {
  if (expression === '') return undefined;
  const parsed = parseCron(expression);
  return 'problem' in parsed ? parsed.problem : undefined;
}
