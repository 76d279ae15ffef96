/** Config keys whose values never leave the member: passwords, secrets, tokens, keys. */
export const SECRET_KEY = /password|secret|token|key/i;
export const REDACTED = '[redacted]';

/**
 * A copy of a config table with every value under a secret-looking key
 * replaced. The merged config holds no secret today (they live in the
 * secrets file), but an operator may add one through [extra] or a future
 * plan may; the API must not be the place it leaks.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? REDACTED : redactSecrets(v);
  return out;
}
