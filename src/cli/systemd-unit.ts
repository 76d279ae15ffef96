import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { installRoot } from '../supervisor/install-paths.js';
import { DEFAULT_CONFIG_FILE } from './cluster.js';
import { shebangNodeArgs } from './shebang.js';

/**
 * `hasup gen-systemd-unit`: the systemd unit that runs `hasup run` on a
 * member. renderSystemdUnit() is the pure part (text from typed options);
 * the command fills in node's path, the shebang's node flags and the
 * compiled CLI's path from this installation, then prints or writes it.
 */

export interface SystemdUnitOptions {
  /** Absolute path of the node executable (process.execPath). */
  nodePath: string;
  /** Node flags from the hasup executable's shebang line (shebangNodeArgs). */
  nodeArgs: string[];
  /** Absolute path of the compiled CLI, INSTALL_ROOT/dist/src/cli/main.js. */
  cliPath: string;
  /** `hasup run --config FILE`; absolute. */
  config?: string;
  /** `hasup run --state-dir DIR`; absolute. */
  stateDir?: string;
  /** User= (default root: hasup starts each service as its plan's user, which needs root). */
  user?: string;
  description?: string;
}

export const DEFAULT_UNIT_DESCRIPTION = 'hasup high-availability supervisor (PostgreSQL, etcd, Elasticsearch)';

/** Time for `hasup run` to stop gracefully on SIGTERM: the services stop in parallel, each SIGKILLed after its plan's stop_timeout_ms (60 s for PostgreSQL and Elasticsearch). */
export const STOP_TIMEOUT_S = 120;

/** Returns the unit file's text; throws an Error naming the bad option. */
export function renderSystemdUnit(o: SystemdUnitOptions): string {
  const words = [
    executableWord(o.nodePath),
    ...o.nodeArgs.map((a) => execWord(checkText(a, 'a node flag of the shebang line'))),
    execWord(checkAbsolute(o.cliPath, 'the hasup CLI path')),
    'run',
  ];
  if (o.stateDir !== undefined) words.push('--state-dir', execWord(checkAbsolute(o.stateDir, '--state-dir')));
  if (o.config !== undefined) words.push('--config', execWord(checkAbsolute(o.config, '--config')));
  const user = checkUser(o.user ?? 'root');
  const description = unitDescription(o.description ?? DEFAULT_UNIT_DESCRIPTION);

  const userLines =
    user === 'root' || user === '0'
      ? []
      : [
          '# Not root: hasup cannot switch its services to their plans\' users, so they',
          `# run as ${user} too.`,
          `User=${escapeSpecifiers(user)}`,
        ];
  return [
    '# hasup: runs `hasup run`, the supervisor of this member\'s PostgreSQL, etcd and',
    '# Elasticsearch. Written by `hasup gen-systemd-unit`. ExecStart names node and the',
    '# hasup installation by absolute path: generate it again after moving either.',
    '',
    '[Unit]',
    `Description=${description}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '# Never give up restarting a crashed supervisor.',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${words.join(' ')}`,
    '# hasup\'s services (PostgreSQL, etcd, Elasticsearch) run in their own process',
    '# groups and outlive a crash of hasup: the restarted hasup finds them through',
    '# their pidfiles and adopts them. The fence process (hasup-fence) outlives it',
    '# too, and stops a leader\'s PostgreSQL as soon as hasup is gone. KillMode=process',
    '# makes systemd signal only hasup itself, on stop and restart, and leave the',
    '# other processes running when hasup dies (the default, control-group, would',
    '# kill them all with it). A deliberate `systemctl stop` or `restart` still stops',
    '# the services: on SIGTERM hasup stops them gracefully, then exits.',
    'KillMode=process',
    '# hasup runs PostgreSQL in a cgroup below this unit\'s, so the fence can kill it',
    '# whole; Delegate=yes hands hasup that subtree.',
    'Delegate=yes',
    'Restart=always',
    'RestartSec=1',
    `TimeoutStopSec=${STOP_TIMEOUT_S}`,
    '# Elasticsearch needs 65535 open files or more; the services inherit these limits.',
    'LimitNOFILE=65536',
    'LimitMEMLOCK=infinity',
    '# Keep the OOM killer away from the supervisor (and the fence, which it starts).',
    '# The services it starts get the ordinary score back (the process runner resets',
    '# oom_score_adj to 0 for each child), so under memory pressure a service goes first.',
    'OOMScoreAdjust=-900',
    ...userLines,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Characters a unit file line cannot hold (C0 controls, including newlines, DEL, C1 controls). */
function hasControl(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

function checkText(text: string, what: string): string {
  if (hasControl(text)) throw new Error(`${what} contains a newline or another control character, which a unit file cannot hold: ${JSON.stringify(text)}`);
  return text;
}

function checkAbsolute(path: string, what: string): string {
  checkText(path, what);
  if (!isAbsolute(path)) throw new Error(`${what} must be an absolute path (systemd starts hasup in /), got "${path}"`);
  return path;
}

/** A word other than a bare [A-Za-z0-9_@+=:,./-]+ is double-quoted; systemd's specifiers (%) and variables ($) are doubled. */
export function execWord(word: string): string {
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(word)) return word;
  const escaped = word.replace(/[\\"%$]/g, (c) => (c === '\\' || c === '"' ? `\\${c}` : c + c));
  return `"${escaped}"`;
}

/** The executable: quoted like any word, but systemd does not expand variables in it, so "$$" would stay "$$". */
function executableWord(path: string): string {
  checkAbsolute(path, 'the node executable path');
  if (path.includes('$')) throw new Error(`the node executable path contains "$", which ExecStart cannot name: ${path}`);
  return execWord(path);
}

/** A user name as useradd and systemd accept it, or a numeric uid. */
function checkUser(user: string): string {
  if (!/^([A-Za-z_][A-Za-z0-9_-]{0,31}|\d+)$/.test(user)) {
    throw new Error(`--user must be a user name (letters, digits, _ and -, not starting with a digit or -) or a numeric uid, got ${JSON.stringify(user)}`);
  }
  return user;
}

function unitDescription(text: string): string {
  const d = checkText(text, '--description').trim();
  if (d === '') throw new Error('--description is empty');
  if (d.endsWith('\\')) throw new Error('--description must not end with a backslash (systemd would read it as a line continuation)');
  return escapeSpecifiers(d);
}

function escapeSpecifiers(text: string): string {
  return text.replace(/%/g, '%%');
}

interface UnitFlags {
  stateDir?: string;
  config: string;
  user: string;
  description?: string;
  output?: string;
}

export function registerSystemdUnitCommand(program: Command): void {
  program
    .command('gen-systemd-unit')
    .description('print (or --output FILE: write) the systemd unit that runs `hasup run` on this member')
    .option('--state-dir <dir>', 'state directory passed to `hasup run` (default: not passed, so member.state_dir of the config applies)')
    .option('--config <file>', 'hasup.toml passed to `hasup run`', DEFAULT_CONFIG_FILE)
    .option('--user <name>', 'user hasup runs as (root lets it start each service as its plan\'s user)', 'root')
    .option('--description <text>', 'Description= of the unit', DEFAULT_UNIT_DESCRIPTION)
    .option('--output <file>', 'write the unit here (mode 0644) instead of printing it')
    .action((flags: UnitFlags) => {
      const cliPath = join(installRoot(), 'dist', 'src', 'cli', 'main.js');
      let nodeArgs: string[];
      try {
        nodeArgs = shebangNodeArgs(cliPath);
      } catch (err) {
        throw new Error(`cannot read the node flags from the compiled CLI (run the build first): ${(err as Error).message}`);
      }
      const text = renderSystemdUnit({ nodePath: process.execPath, nodeArgs, cliPath, config: flags.config, stateDir: flags.stateDir, user: flags.user, description: flags.description });
      if (flags.output === undefined) {
        process.stdout.write(text);
        return;
      }
      const file = resolve(flags.output);
      writeUnitFile(file, text);
      // In a unit directory (/etc/systemd/system, ...): say what makes systemd use it.
      const name = basename(file);
      const inUnitDir = file.includes('/systemd/') && name.endsWith('.service');
      console.log(`wrote ${file}${inUnitDir ? `; then: systemctl daemon-reload && systemctl enable --now ${name}` : ''}`);
    });
}

/** Written beside the target and renamed over it, so systemd never reads half a unit; mode 0644 whatever the umask. */
function writeUnitFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644, flag: 'wx' });
    chmodSync(tmp, 0o644);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`cannot write ${file}: ${(err as Error).message}`);
  }
}
