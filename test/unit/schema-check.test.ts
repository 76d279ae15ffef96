import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSchema } from '../../src/plugins/http/schema-check.js';

const params = compileSchema({
  type: 'object',
  required: ['svc', 'group'],
  additionalProperties: false,
  properties: { svc: { type: 'string', pattern: '^[a-z]+$', maxLength: 8 }, group: { type: 'string', enum: ['default', 'blue'] }, n: { type: 'integer', minimum: 1, maximum: 3 } },
});

test('a valid value passes', () => {
  assert.equal(params({ svc: 'pg', group: 'default' }), undefined);
  assert.equal(params({ svc: 'pg', group: 'blue', n: 3 }), undefined);
});

test('each broken rule is reported with its keyword, path and the offending name', () => {
  assert.deepEqual(params({ svc: 'pg' }), { keyword: 'required', instancePath: '', schemaPath: '#/required', params: { missingProperty: 'group' }, message: "must have required property 'group'" });
  assert.equal(params({ svc: 'pg', group: 'default', lag: '1' })?.params.additionalProperty, 'lag');
  assert.deepEqual([params({ svc: 'PG', group: 'default' })?.keyword, params({ svc: 'PG', group: 'default' })?.instancePath], ['pattern', '/svc']);
  assert.equal(params({ svc: 'abcdefghi', group: 'default' })?.keyword, 'maxLength');
  assert.equal(params({ svc: 'pg', group: 'green' })?.keyword, 'enum');
  assert.equal(params({ svc: 'pg', group: 'default', n: 4 })?.keyword, 'maximum');
  assert.equal(params({ svc: 'pg', group: 'default', n: 1.5 })?.keyword, 'type');
  assert.equal(params(null)?.keyword, 'type');
  assert.equal(params(['pg'])?.keyword, 'type');
});

test('a type list admits each of its types', () => {
  const body = compileSchema({ type: ['object', 'null'], additionalProperties: false, properties: { to: { type: 'string' } } });
  assert.equal(body(null), undefined);
  assert.equal(body({ to: 'x' }), undefined);
  assert.equal(body('x')?.keyword, 'type');
  assert.equal(body({ to: 1 })?.instancePath, '/to');
});

test('a schema keyword outside the checked subset is refused when the route is built, not ignored', () => {
  assert.throws(() => compileSchema({ type: 'object', properties: { a: { type: 'string', format: 'email' } } }), /keyword "format" is not supported/);
  assert.throws(() => compileSchema({ anyOf: [] }), /keyword "anyOf"/);
});
