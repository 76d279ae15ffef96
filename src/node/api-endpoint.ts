import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The API endpoint file: `hasup run` records its API URL and secrets path in
 * STATE_DIR/api.json (mode 0600), and the CA bundle of its certificate under TLS; CLI commands read it to reach the local
 * daemon (src/cli/api-client.ts).
 */
export interface ApiEndpoint {
  url: string;
  secrets: string;
  /** The CA bundle that signed the API's certificate (the member's, docs/tls.md), when it serves HTTPS. */
  ca?: string;
}

export function writeApiEndpoint(stateDir: string, endpoint: ApiEndpoint): void {
  const file = join(stateDir, 'api.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(endpoint), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** What the daemon recorded, or an empty record when none has run with this state directory. */
export function readApiEndpoint(stateDir: string): Partial<ApiEndpoint> {
  const file = join(stateDir, 'api.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ApiEndpoint) : {};
}
