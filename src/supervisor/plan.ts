import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compileTemplates, TemplateError, type Template } from './templates.js';
import { ConfigError, keyLines, parseTomlFile, validate, type Schema, type TomlTable } from './toml-schema.js';

/**
 * A plan is a folder describing one service, as in Habitat:
 *
 *   plan.toml      manifest: name, version, driver, run command, user, ports,
 *                  health check, topology, which settings need a restart
 *   default.toml   default configuration (the lowest config layer)
 *   config/*.hbs   Handlebars templates rendered into the service's config dir
 *   hooks/         optional executables: init, health-check, reconfigure, post-stop
 */
export const HOOK_NAMES = ['init', 'health-check', 'reconfigure', 'post-stop'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

export const MANIFEST_SCHEMA: Schema = {
  name: { type: 'string', doc: 'service name, also the directory name under the state dir', check: (v) => (/^[a-z][a-z0-9-]*$/.test(v) ? undefined : 'lower-case letters, digits and dashes') },
  version: { type: 'string', doc: 'version of the service the plan runs' },
  driver: { type: 'string', doc: 'service driver that knows this service (postgresql, etcd, elasticsearch, generic)', default: 'generic' },
  topology: { type: 'string', doc: 'standalone: every member runs it alike; leader: one member leads', enum: ['standalone', 'leader'], default: 'standalone' },
  run: {
    type: 'table',
    doc: 'how to start the service',
    fields: {
      command: { type: 'string', doc: 'executable (Handlebars: may use {{cfg.*}}, {{svc.*}})' },
      args: { type: 'string[]', doc: 'arguments (Handlebars)', default: [] },
      user: { type: 'string', doc: 'service user the child runs as when the supervisor is root', default: 'hasup' },
      env: { type: 'any-table', doc: 'environment of the child besides PATH and LANG: NAME = "value" (Handlebars)' },
      stop_signal: { type: 'string', doc: 'signal that asks the service to stop (PostgreSQL: SIGINT, its fast shutdown)', enum: STOP_SIGNALS, default: 'SIGTERM' },
      stop_timeout_ms: { type: 'integer', doc: 'stop_signal, then SIGKILL after this long', default: 30_000, min: 100 },
      log_file: {
        type: 'string',
        doc: 'a file the service logs to instead of stdout/stderr, followed like stderr (Handlebars); for a service that would die of a broken pipe once adopted after a supervisor crash (Go programs such as etcd)',
        default: '',
      },
    },
  },
  ports: { type: 'any-table', doc: 'name = "cfg.key" pairs: the config keys that hold the ports the service listens on' },
  health: {
    type: 'table',
    doc: 'health check',
    fields: {
      interval_ms: { type: 'integer', doc: 'time between checks', default: 5000, min: 100 },
      timeout_ms: { type: 'integer', doc: 'a check slower than this is CRITICAL', default: 3000, min: 50 },
    },
  },
  config: {
    type: 'table',
    doc: 'how configuration changes are applied',
    fields: {
      restart_keys: { type: 'string[]', doc: 'dotted config keys whose change needs a restart; any other change is applied by reload', default: [] },
      reload_signal: { type: 'string', doc: 'signal that makes the service re-read its config', enum: SIGNALS, default: 'SIGHUP' },
    },
  },
};

export interface PlanManifest {
  name: string;
  version: string;
  driver: string;
  topology: 'standalone' | 'leader';
  run: { command: string; args: string[]; user: string; env: Record<string, string>; stop_signal: (typeof STOP_SIGNALS)[number]; stop_timeout_ms: number; log_file: string };
  ports: Record<string, string>;
  health: { interval_ms: number; timeout_ms: number };
  config: { restart_keys: string[]; reload_signal: (typeof SIGNALS)[number] };
}

export interface Plan {
  dir: string;
  manifest: PlanManifest;
  defaults: TomlTable;
  /** Output file name (template name without .hbs) → compiled template. */
  templates: Map<string, Template>;
  hooks: Partial<Record<HookName, string>>;
}

export function loadPlan(dir: string): Plan {
  const manifestFile = join(dir, 'plan.toml');
  if (!existsSync(manifestFile)) throw new ConfigError(manifestFile, undefined, 'no plan here (plan.toml is missing)');
  const manifestText = readFileSync(manifestFile, 'utf8');
  const manifest = validate(parseTomlFile(manifestText, manifestFile), MANIFEST_SCHEMA, manifestText, manifestFile) as unknown as PlanManifest;
  manifest.ports ??= {};
  manifest.run.env ??= {};
  for (const [name, value] of Object.entries(manifest.run.env)) {
    const line = keyLines(manifestText).get(`run.env.${name}`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(manifestFile, line, `run.env: "${name}" is not an environment variable name`);
    if (typeof value !== 'string') throw new ConfigError(manifestFile, line, `run.env.${name} must be a string (Handlebars)`);
  }
  for (const [name, key] of Object.entries(manifest.ports)) {
    if (typeof key !== 'string') throw new ConfigError(manifestFile, undefined, `ports.${name} must name a config key`);
  }

  const defaultsFile = join(dir, 'default.toml');
  const defaults = existsSync(defaultsFile) ? parseTomlFile(readFileSync(defaultsFile, 'utf8'), defaultsFile) : {};

  const templates = new Map<string, Template>();
  const configDir = join(dir, 'config');
  const files = existsSync(configDir) ? readdirSync(configDir).sort().filter((name) => name.endsWith('.hbs')) : [];
  // The run line's texts go in the same batch: compiled once here, when the plan is loaded,
  // the service's start finds them ready instead of starting a compiler child of its own.
  const compiled = compileTemplates([...files.map((name) => readFileSync(join(configDir, name), 'utf8')), ...runTexts(manifest)]);
  files.forEach((name, i) => {
    const t = compiled[i]!;
    if (t instanceof TemplateError) throw new ConfigError(join(configDir, name), undefined, `template does not compile: ${t.message}`);
    templates.set(name.slice(0, -4), t);
  });

  const hooks: Partial<Record<HookName, string>> = {};
  for (const hook of HOOK_NAMES) {
    const file = join(dir, 'hooks', hook);
    if (!existsSync(file)) continue;
    try {
      if (!statSync(file).isFile()) throw new Error('not a file');
      accessSync(file, constants.X_OK);
    } catch {
      throw new ConfigError(file, undefined, 'hook must be an executable file');
    }
    hooks[hook] = file;
  }
  return { dir, manifest, defaults, templates, hooks };
}

/** Finds a plan by name in the search path (first match wins). */
/** The Handlebars texts of a manifest's run line (command, args, env values, log file). */
function runTexts(m: PlanManifest): string[] {
  return [m.run.command, ...m.run.args, ...Object.values(m.run.env), ...(m.run.log_file ? [m.run.log_file] : [])];
}

/**
 * Loads (and so compiles) every plan found on the search path, at start:
 * compiling runs in a child process the supervisor waits for, which on a
 * loaded machine takes seconds, and a leader whose event loop waits that
 * long misses its lease renewals. A plan that does not load is skipped
 * here; it fails with its reason when a service uses it.
 */
export function preloadPlans(searchPath: string[]): number {
  const dirs: string[] = [];
  for (const root of searchPath) {
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root)) if (existsSync(join(root, name, 'plan.toml'))) dirs.push(join(root, name));
  }
  let loaded = 0;
  for (const dir of dirs) {
    try {
      loadPlan(dir);
      loaded++;
    } catch {
      // reported when a service uses it
    }
  }
  return loaded;
}

export function findPlan(name: string, searchPath: string[]): Plan {
  for (const root of searchPath) {
    const dir = join(root, name);
    if (existsSync(join(dir, 'plan.toml'))) return loadPlan(dir);
  }
  throw new Error(`no plan named "${name}" in ${searchPath.join(', ')}`);
}
