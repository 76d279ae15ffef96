import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { PAGE_CSS } from './page-html.js';

export interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

/**
 * The console's files, read and gzipped once: the page's modules (page/,
 * compiled by the build's tsc beside this file), its stylesheet, and
 * uPlot's module and stylesheet from the uplot package. All from the
 * package, so the console works with no network beyond the members.
 */
export function consoleAssets(): { get(name: string): Asset | undefined; compress(text: string | Buffer): Omit<Asset, 'type'>; totalGzipBytes(): number } {
  const files = new Map<string, Asset>();
  const add = (name: string, type: string, body: string | Buffer) => files.set(name, { type, ...compress(body) });
  const pageDir = fileURLToPath(new URL('./page/', import.meta.url));
  let names: string[];
  try {
    names = readdirSync(pageDir).filter((f) => f.endsWith('.js'));
  } catch (err) {
    throw new Error(`the console's scripts are missing (${pageDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); build hasup with npm run build`);
  }
  for (const name of names) add(name, 'text/javascript; charset=utf-8', readFileSync(`${pageDir}${name}`));
  add('console.css', 'text/css; charset=utf-8', PAGE_CSS);
  const require = createRequire(import.meta.url);
  add('uplot.js', 'text/javascript; charset=utf-8', readFileSync(require.resolve('uplot/dist/uPlot.esm.js')));
  add('uplot.css', 'text/css; charset=utf-8', readFileSync(require.resolve('uplot/dist/uPlot.min.css')));
  return {
    get: (name) => files.get(name),
    compress,
    totalGzipBytes: () => [...files.values()].filter((a) => a.type.startsWith('text/javascript')).reduce((n, a) => n + a.gzip.length, 0),
  };
}

function compress(text: string | Buffer): Omit<Asset, 'type'> {
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  return { body, gzip: gzipSync(body, { level: 9 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}
