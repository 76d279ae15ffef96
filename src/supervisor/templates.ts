import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Handlebars templates (plan config files, run.command/args/env), compiled
 * in a short-lived child process and run here by Handlebars' runtime alone.
 * The compiler (parser, code generator, source maps) is most of Handlebars'
 * weight, and once loaded it would stay in the supervisor's memory for good
 * to be used a handful of times at startup. Compiled templates are kept by
 * source text, so a plan read again (every `findPlan`) costs no new child.
 *
 * The options are the supervisor's: strict (a missing value is an error,
 * not an empty string) and no HTML escaping (these are config files).
 */
export type Template = (context: unknown) => string;

export class TemplateError extends Error {}

const runtime = createRequire(import.meta.url)('handlebars/runtime') as { template(spec: unknown): Template };
const CHILD = fileURLToPath(new URL('./template-compiler-child.js', import.meta.url));
/** By source text; a source that does not compile keeps its error (compiling is deterministic). */
const compiled = new Map<string, Template | TemplateError>();
let childRuns = 0;

/** How many compiler children have run in this process (each one blocks the event loop while it works). */
export function compilerRuns(): number {
  return childRuns;
}

/** Compiles each source, in one child for all that are new; each answer is the template or why the source does not compile. */
export function compileTemplates(sources: string[]): Array<Template | TemplateError> {
  const missing = [...new Set(sources.filter((s) => !compiled.has(s)))];
  if (missing.length > 0) {
    childRuns++;
    const child = spawnSync(process.execPath, [CHILD], { input: JSON.stringify({ sources: missing }), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (child.error || child.status !== 0) {
      const why = child.error?.message ?? (child.stderr.trim().split('\n').pop() || `exit status ${child.status}`);
      throw new Error(`the template compiler ${CHILD} failed: ${why}`);
    }
    const { results } = JSON.parse(child.stdout) as { results: Array<{ spec?: string; error?: string }> };
    missing.forEach((source, i) => {
      const r = results[i];
      // The spec is JavaScript the compiler wrote for the source text it was given.
      const template = r?.spec !== undefined ? runtime.template(new Function(`return ${r.spec};`)()) : new TemplateError(r?.error ?? 'the compiler gave no answer');
      compiled.set(source, template);
    });
  }
  return sources.map((s) => compiled.get(s)!);
}

/** One template; throws TemplateError when it does not compile. */
export function compileTemplate(source: string): Template {
  const t = compileTemplates([source])[0]!;
  if (t instanceof TemplateError) throw t;
  return t;
}
