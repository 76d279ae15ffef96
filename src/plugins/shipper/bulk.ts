/**
 * What a bulk answer means for each document, and how a request that failed
 * as a whole is retried. Pure functions: the shipper acts on the verdicts.
 *
 * Per item (we only ever send `create`):
 *   201/200          delivered
 *   409              a document with this id exists: an earlier attempt got
 *                    through (a replay after a crash or timeout) — delivered
 *   429, 5xx         Elasticsearch is busy or a shard is unavailable — retry
 *   403/404 for cluster reasons (a cluster block such as the disk flood
 *                    stage, a missing index that may not be auto-created) —
 *                    retry: the document is fine, the cluster is not ready
 *   any other 4xx    the document itself is refused (mapping conflict,
 *                    unparsable field) — drop it, count it, warn naming why
 */
import { backoffDelay } from '../../supervisor/backoff.js';

export type ItemVerdict = 'delivered' | 'conflict' | 'retry' | 'rejected';

export interface BulkItemResult {
  status?: number;
  error?: { type?: string; reason?: string; caused_by?: { type?: string; reason?: string } };
}

/** Error types that mean "the cluster cannot take it now", not "this document is wrong". */
const CLUSTER_CONDITIONS = new Set(['cluster_block_exception', 'index_not_found_exception', 'unavailable_shards_exception', 'es_rejected_execution_exception', 'circuit_breaking_exception', 'index_closed_exception', 'no_shard_available_action_exception']);

export function itemVerdict(item: BulkItemResult): ItemVerdict {
  const status = item.status ?? 0;
  if (status >= 200 && status < 300 && !item.error) return 'delivered';
  if (status === 409) return 'conflict';
  if (status === 429 || status >= 500 || status === 0) return 'retry';
  if (item.error?.type && CLUSTER_CONDITIONS.has(item.error.type)) return 'retry';
  return 'rejected';
}

export interface BulkOutcome {
  delivered: number;
  conflicts: number;
  /** Positions (in the request) of documents to send again. */
  retry: number[];
  /** Documents dropped for good, with Elasticsearch's reason. */
  rejected: Array<{ position: number; status: number; type: string; reason: string }>;
}

/**
 * Reads a bulk answer for `count` documents. An answer that does not list
 * every document (truncated, or not a bulk answer at all) retries the ones
 * it does not mention: nothing is counted delivered without a verdict.
 */
export function interpretBulkAnswer(body: unknown, count: number): BulkOutcome {
  const outcome: BulkOutcome = { delivered: 0, conflicts: 0, retry: [], rejected: [] };
  const answer = (body ?? {}) as { errors?: unknown; items?: Array<Record<string, BulkItemResult>> };
  const items = Array.isArray(answer.items) ? answer.items : [];
  for (let position = 0; position < count; position++) {
    const entry = items[position];
    const item = entry ? (entry.create ?? entry.index ?? Object.values(entry)[0]) : undefined;
    if (!item) {
      outcome.retry.push(position);
      continue;
    }
    switch (itemVerdict(item)) {
      case 'delivered':
        outcome.delivered++;
        break;
      case 'conflict':
        outcome.conflicts++;
        break;
      case 'retry':
        outcome.retry.push(position);
        break;
      case 'rejected': {
        const cause = item.error?.caused_by;
        const reason = [item.error?.reason, cause?.reason ? `(${cause.type ?? 'cause'}: ${cause.reason})` : undefined].filter(Boolean).join(' ');
        outcome.rejected.push({ position, status: item.status ?? 0, type: item.error?.type ?? 'unknown', reason: reason || `status ${item.status ?? '?'}` });
        break;
      }
    }
  }
  return outcome;
}

export type RequestVerdict = 'retry' | 'failover';

/**
 * A bulk request that failed as a whole. No answer (refused, reset,
 * timeout) is a reason to try another node; an answer (429, 5xx, even a
 * 4xx) is retried on the same node after a pause — a whole-request 4xx is
 * our bug or the cluster's state, and dropping a whole batch for it would
 * lose good events.
 */
export function requestVerdict(err: unknown): RequestVerdict {
  const status = (err as { meta?: { statusCode?: number } }).meta?.statusCode;
  return typeof status === 'number' && status > 0 ? 'retry' : 'failover';
}

/**
 * The pause before retry number `attempt` (0-based) of a bulk request that
 * failed as a whole: the supervisor's backoff (supervisor/backoff.ts),
 * doubling from `baseMs` up to `maxMs`, with up to half of each step
 * randomised away, so many members retrying after the same outage spread out
 * instead of hitting Elasticsearch together. `random` near 0 gives the
 * shortest pause (half the step), near 1 the whole step.
 */
export function bulkRetryDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return backoffDelay(attempt, { initialMs: baseMs, maxMs, factor: 2, jitter: 0.5 }, () => 1 - random());
}
