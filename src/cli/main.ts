#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
// The flags keep an idle supervisor small. It allocates little and briefly, and
// V8's default young generation (16 MiB semi-spaces) would be most of its idle
// memory; and one V8 helper thread instead of one per core (each brings its own
// stack and malloc arena). (--optimize-for-size was tried too: it saved nothing
// measurable and raised the API's p99 latency at 1000 requests/s.)
// The test harness and the demo read this line (src/cli/shebang.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerBackupCommands } from './backup-commands.js';
import { registerRestoreCommand } from './restore-command.js';
import { registerCensusCommand } from './census.js';
import { registerCertCommands } from './cert-commands.js';
import { registerClientCommands } from './client-commands.js';
import { registerClusterCommands } from './cluster.js';
import { registerFrontendConfigCommand } from './frontend-config.js';
import { registerHaCommands } from './ha-commands.js';
import { registerRingKeyCommands } from './ring-key.js';
import { registerRollingCommands } from './rollout/rolling-commands.js';
import { registerSnapshotCommands } from './snapshot-commands.js';
import { registerRunCommand } from './run.js';
import { registerSystemdUnitCommand } from './systemd-unit.js';
import { installRoot } from '../supervisor/install-paths.js';

const pkg = JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command()
  .name('hasup')
  .description('high-availability supervisor: keeps PostgreSQL, etcd and Elasticsearch running and elects a PostgreSQL leader over an encrypted gossip ring')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerRunCommand(program);
registerClusterCommands(program);
registerRingKeyCommands(program);
registerClientCommands(program);
registerCensusCommand(program);
registerCertCommands(program);
registerFrontendConfigCommand(program);
registerHaCommands(program);
registerBackupCommands(program);
registerRestoreCommand(program);
registerSnapshotCommands(program);
registerSystemdUnitCommand(program);
registerRollingCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  console.error(`hasup: ${(err as Error).message}`);
  process.exit(1);
}
