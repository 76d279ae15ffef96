import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { compileTemplate, compileTemplates, TemplateError } from '../../src/supervisor/templates.js';

test('templates render with strict lookups and no HTML escaping', () => {
  const t = compileTemplate('port = {{cfg.port}}\n{{#each cfg.hosts}}host {{this}} & co\n{{/each}}');
  assert.equal(t({ cfg: { port: 5432, hosts: ['a<b', 'c'] } }), 'port = 5432\nhost a<b & co\nhost c & co\n');
  assert.throws(() => t({ cfg: { hosts: [] } }), /"port" not defined/);
});

test('a source that does not compile is reported for that source alone', () => {
  const [good, bad] = compileTemplates(['{{cfg.a}}', '{{#if cfg.a}}unclosed']);
  assert.equal(typeof good, 'function');
  assert.ok(bad instanceof TemplateError);
  assert.match(bad.message, /Parse error|Expecting/);
  assert.throws(() => compileTemplate('{{#each}}'), TemplateError);
});

test('the same source is compiled once, and the compiler never loads in this process', () => {
  assert.equal(compileTemplate('x {{cfg.y}}'), compileTemplate('x {{cfg.y}}'));
  const loaded = Object.keys(createRequire(import.meta.url).cache);
  assert.ok(loaded.some((f) => f.includes('handlebars.runtime')), 'the runtime is loaded');
  assert.ok(!loaded.some((f) => /handlebars[/\\]dist[/\\]cjs[/\\]handlebars[/\\]compiler/.test(f)), 'the compiler is not');
});
