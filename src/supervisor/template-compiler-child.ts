/**
 * Runs as a short-lived child of the supervisor (src/supervisor/templates.ts):
 * reads {"sources": [...]} on stdin, writes {"results": [{"spec"} | {"error"}]}
 * on stdout, one per source, in order. Only this process loads Handlebars'
 * compiler.
 */
import Handlebars from 'handlebars';

const chunks: Buffer[] = [];
for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
const { sources } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { sources: string[] };
const results = sources.map((source) => {
  try {
    return { spec: String(Handlebars.precompile(source, { strict: true, noEscape: true })) };
  } catch (err) {
    return { error: (err as Error).message };
  }
});
process.stdout.write(JSON.stringify({ results }));
