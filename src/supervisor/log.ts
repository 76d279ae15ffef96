import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * A second destination for the supervisor's log lines (the journal shipper
 * attaches to it). Until something attaches, the first lines are kept (a
 * bounded number), so what the daemon logs while starting is shipped too;
 * detach() forgets them when nothing will ship.
 */
export class LogTap {
  private consumer: ((line: string) => void) | undefined;
  private early: string[] | undefined = [];

  constructor(private readonly keepEarly = 2000) {}

  write(line: string): void {
    if (this.consumer) {
      try {
        this.consumer(line);
      } catch {
        // A consumer's failure must never reach the logging call.
      }
      return;
    }
    if (this.early && this.early.length < this.keepEarly) this.early.push(line);
  }

  attach(consumer: (line: string) => void): void {
    this.consumer = consumer;
    const early = this.early ?? [];
    this.early = undefined;
    for (const line of early) this.write(line);
  }

  detach(): void {
    this.consumer = undefined;
    this.early = undefined;
  }
}

/**
 * The supervisor's structured log: JSON lines on stdout (what a systemd unit
 * or the journal shipper collects), and to `tap` when given. Secrets never go
 * into log fields; the redact list is a second line of defence.
 */
export function createLogger(opts: { level?: string; memberId?: string; tap?: LogTap } = {}): Logger {
  const options = {
    level: opts.level ?? process.env.HASUP_LOG_LEVEL ?? 'info',
    base: opts.memberId ? { member: opts.memberId } : {},
    redact: { paths: ['*.password', '*.token', '*.key', '*.secret', 'password', 'token', 'key', 'secret'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.epochTime,
  };
  const tap = opts.tap;
  if (!tap) return pino(options);
  // stdout exactly as without a tap (synchronous, what pino does by default), plus the tap.
  const stdout = pino.destination({ dest: 1, sync: true });
  return pino(options, {
    write(line: string) {
      stdout.write(line);
      tap.write(line);
    },
  });
}
