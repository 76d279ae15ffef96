import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The supervisor's structured log: JSON lines on stdout (what a systemd unit
 * or the journal shipper collects). Secrets never go into log fields; the
 * redact list is a second line of defence.
 */
export function createLogger(opts: { level?: string; memberId?: string } = {}): Logger {
  return pino({
    level: opts.level ?? process.env.HASUP_LOG_LEVEL ?? 'info',
    base: opts.memberId ? { member: opts.memberId } : {},
    redact: { paths: ['*.password', '*.token', '*.key', '*.secret', 'password', 'token', 'key', 'secret'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.epochTime,
  });
}
