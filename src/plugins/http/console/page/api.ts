/**
 * The page's way to the member API: same origin, the session cookie (sent
 * by the browser, never seen by this code), and the session's CSRF token on
 * every state-changing request. A 401 means the session ended: the page
 * goes back to its login.
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface SessionInfo {
  role: 'viewer' | 'operator';
  member_id: string;
  csrf: string | null;
  expires_at: number | null;
}

let csrf: string | null = null;
let onSessionEnd: () => void = () => {};

export function useSession(s: SessionInfo, ended: () => void): void {
  csrf = s.csrf;
  onSessionEnd = ended;
}

export async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new ApiError(`the member does not answer (${(err as Error).message})`, 0);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text.slice(0, 200) };
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/ui/session') onSessionEnd();
    const why = (data as { error?: unknown }).error;
    throw new ApiError(typeof why === 'string' ? why : `HTTP ${res.status}`, res.status);
  }
  return data as T;
}

export const get = <T>(path: string) => call<T>('GET', path);
export const post = <T>(path: string, body?: unknown, timeoutMs?: number) => call<T>('POST', path, body ?? {}, timeoutMs);
