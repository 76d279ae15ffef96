import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, keyLines, parseTomlFile, validate, type Schema } from '../../src/supervisor/toml-schema.js';

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
