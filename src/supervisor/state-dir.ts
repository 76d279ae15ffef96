import { accessSync, chmodSync, constants, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const DEFAULT_STATE_DIR = '/var/lib/hasup';

/**
 * Everything a member keeps lives under one state directory: its member id,
 * rendered configs, service data directories, logs and spools.
 */
export class StateDir {
  constructor(readonly root: string) {}

  /**
   * Creates the directory and checks that it is writable. Mode 0711: service
   * users must traverse it to reach their own directories under svc/, but
   * nobody else may list it (secrets live in files of mode 0600).
   */
  ensure(): void {
    try {
      mkdirSync(this.path('svc'), { recursive: true, mode: 0o711 });
      chmodSync(this.root, 0o711);
      chmodSync(this.path('svc'), 0o711);
      accessSync(this.root, constants.W_OK);
    } catch (err) {
      throw new Error(`state directory ${this.root} is not usable: ${(err as Error).message}`);
    }
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /**
   * The member id is created once and kept for the life of the state
   * directory, so a restarted member is the same member to the ring.
   */
  memberId(): string {
    const file = this.path('member-id');
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (/^[0-9a-f]{16}$/.test(id)) return id;
      throw new Error(`${file} does not hold a member id (16 hex digits); remove it to make a new one`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const id = randomBytes(8).toString('hex');
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, `${id}\n`, { mode: 0o600 });
    renameSync(tmp, file);
    return id;
  }
}
