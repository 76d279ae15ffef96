import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTable, ConfigError, keyLines, parseTomlFile, schemaOfDefaults, validate, type Schema } from '../../src/supervisor/toml-schema.js';

const schema: Schema = {
  name: { type: 'string', doc: 'a name' },
  mode: { type: 'string', doc: 'a mode', enum: ['a', 'b'], default: 'a' },
  net: {
    type: 'table',
    doc: 'network',
    fields: {
      port: { type: 'integer', doc: 'port', min: 1, max: 65535, default: 9638 },
      peers: { type: 'string[]', doc: 'peers', default: [] },
    },
  },
};

function load(text: string) {
  return validate(parseTomlFile(text, 'x.toml'), schema, text, 'x.toml');
}

test('defaults are filled and given values kept', () => {
  assert.deepEqual(load('name = "n"\n[net]\npeers = ["1.2.3.4"]\n'), { name: 'n', mode: 'a', net: { port: 9638, peers: ['1.2.3.4'] } });
});

test('an unknown key names file, line and the known keys', () => {
  assert.throws(() => load('name = "n"\n[net]\nport = 1\nprot = 2\n'), (err: ConfigError) => {
    assert.equal(err.line, 4);
    assert.match(err.message, /^x\.toml:4: unknown key "net\.prot" \(known here: port, peers\)/);
    return true;
  });
});

test('a wrong type names the line and what was expected', () => {
  assert.throws(() => load('name = "n"\n\n[net]\nport = "9638"\n'), /x\.toml:4: "net\.port" must be an integer, got string "9638"/);
  assert.throws(() => load('name = 5\n'), /x\.toml:1: "name" must be a string/);
  assert.throws(() => load('mode = "c"\n'), /x\.toml:1: "mode" must be one of a, b/);
  assert.throws(() => load('[net]\nport = 70000\n'), /x\.toml:2: "net\.port" must be at most 65535/);
});

test('a syntax error is reported with its line', () => {
  assert.throws(() => load('name = "n"\nmode =\n'), (err: ConfigError) => err.line === 2 && err.file === 'x.toml');
});

test('keyLines follows table headers and dotted keys', () => {
  const lines = keyLines('a = 1\n[b]\nc.d = 2\n[e.f]\ng = 3\n');
  assert.equal(lines.get('a'), 1);
  assert.equal(lines.get('b.c.d'), 3);
  assert.equal(lines.get('e.f'), 4);
  assert.equal(lines.get('e.f.g'), 5);
});

test('checkTable collects every problem in document order and keeps what passed', () => {
  const s: Schema = {
    wait: { type: 'number', doc: 'seconds', min: 0.1, default: 1 },
    sync: { type: 'boolean-or', words: ['auto'], doc: 'sync', default: 'auto' },
    tags: { type: 'list', doc: 'tags' },
  };
  assert.deepEqual(checkTable({ wait: 0.5, sync: false }, s, { fill: true }), { value: { wait: 0.5, sync: false }, problems: [] });
  const { value, problems } = checkTable({ wait: '1', sync: 'yes', tags: 3, extra: 1 }, s, { at: ['t'] });
  assert.deepEqual(value, {});
  assert.deepEqual(
    problems.map((p) => p.reason),
    ['unknown key "t.extra" (known here: wait, sync, tags)', '"t.wait" must be a number, got string "1"', '"t.sync" must be true, false or "auto", got string "yes"', '"t.tags" must be a list, got number 3'],
  );
  assert.match(checkTable({ wait: 0.01 }, s).problems[0]!.reason, /"wait" must be at least 0.1, got 0.01/);
});

test('a plan default implies the type of its key; an empty table is open; "auto" also takes true or false', () => {
  const schema = schemaOfDefaults({ port: 5432, name: 'x', on: true, cidrs: ['a'], extra: {}, ha: { sync: 'auto' } });
  assert.deepEqual(checkTable({ port: 1.5, name: 'y', on: false, cidrs: [], extra: { any: { thing: 1 } }, ha: { sync: true } }, schema).problems, []);
  assert.deepEqual(
    checkTable({ port: 'p', ha: { sync: 'sometimes' } }, schema).problems.map((p) => p.reason),
    ['"port" must be a number, got string "p"', '"ha.sync" must be true, false or "auto", got string "sometimes"'],
  );
});
