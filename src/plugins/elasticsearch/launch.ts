import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { installRoot } from '../../supervisor/install-paths.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';

/**
 * Where the Elasticsearch distribution and its Java come from. Both launch
 * routes run the same thing — a distribution's bin/elasticsearch — and differ
 * only in where that distribution lives:
 *
 *   distribution  an installed Elasticsearch 8 at cfg.home (production)
 *   maven         Elastic's integ-test-zip, fetched from Maven Central by
 *                 `npm run bootstrap` into vendor/elasticsearch/home of the
 *                 hasup installation (development, CI)
 */
export const LAUNCHERS = ['distribution', 'maven'] as const;
export type Launcher = (typeof LAUNCHERS)[number];

/** Where scripts/bootstrap.sh unpacks the Maven-fetched distribution, relative to the installation root. */
export const VENDORED_HOME = join('vendor', 'elasticsearch', 'home');

export interface LaunchPlan {
  launcher: Launcher;
  /** ES_HOME: the folder holding bin/elasticsearch. */
  home: string;
  /** ES_JAVA_HOME, or '' for the distribution's bundled jdk/. Undefined when no Java was found. */
  javaHome: string | undefined;
}

export interface LaunchEnvironment {
  /** The hasup installation root (holds vendor/); defaults to this installation's. */
  installRoot?: string;
  /** Search path for `java` when neither cfg.java_home nor a bundled JDK is there. */
  path?: string;
}

export function resolveLaunch(cfg: TomlTable, env: LaunchEnvironment = {}): LaunchPlan {
  const launcher = cfg.launcher;
  if (typeof launcher !== 'string' || !(LAUNCHERS as readonly string[]).includes(launcher)) {
    throw new Error(`elasticsearch: launcher must be one of ${LAUNCHERS.join(', ')}, got ${JSON.stringify(launcher)}`);
  }
  const home = launcher === 'maven' ? join(env.installRoot ?? installRoot(), VENDORED_HOME) : String(cfg.home ?? '');
  if (home === '') throw new Error('elasticsearch: launcher "distribution" needs home (the ES_HOME of the installed distribution)');
  return { launcher: launcher as Launcher, home, javaHome: resolveJavaHome(String(cfg.java_home ?? ''), home, env.path ?? process.env.PATH ?? '') };
}

/** The command the plan runs. */
export function launcherScript(home: string): string {
  return join(home, 'bin', 'elasticsearch');
}

/**
 * Why this launch cannot work, in words an operator can act on; undefined
 * when the distribution and a Java are there.
 */
export function launchProblem(launch: LaunchPlan): string | undefined {
  const script = launcherScript(launch.home);
  if (!isExecutable(script)) {
    if (launch.launcher === 'maven') {
      return `the development Elasticsearch is not fetched (${script} is missing): run npm run bootstrap, or set [service.elasticsearch] launcher = "distribution" and home`;
    }
    return `no Elasticsearch distribution at ${launch.home} (${script} is missing or not executable): install Elasticsearch 8 there, or set [service.elasticsearch] home`;
  }
  if (launch.javaHome === undefined) {
    return `no Java for Elasticsearch: ${launch.home} has no bundled jdk/ and there is no java on PATH; install a JDK 17+ (npm run bootstrap installs openjdk-17-jre-headless) or set [service.elasticsearch] java_home`;
  }
  if (launch.javaHome !== '' && !isExecutable(join(launch.javaHome, 'bin', 'java'))) {
    return `java_home ${launch.javaHome} has no executable bin/java`;
  }
  return undefined;
}

/**
 * An explicit java_home wins; then the distribution's bundled JDK (''), as
 * bin/elasticsearch uses it when ES_JAVA_HOME is empty; then the JDK behind
 * the `java` on PATH (Debian's /usr/bin/java is a chain of symlinks).
 */
function resolveJavaHome(configured: string, home: string, searchPath: string): string | undefined {
  if (configured !== '') return configured;
  if (isExecutable(join(home, 'jdk', 'bin', 'java'))) return '';
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'java');
    if (!isExecutable(candidate)) continue;
    try {
      return dirname(dirname(realpathSync(candidate)));
    } catch {
      // A dangling link: keep looking.
    }
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
