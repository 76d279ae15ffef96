import assert from 'node:assert/strict';

/** The message of the error of class `kind` that `fn` throws; fails the test when it throws nothing or something else. */
export function refusalMessage(kind: abstract new (...args: never[]) => Error, fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof kind, String(err));
    return err.message;
  }
  assert.fail('not refused');
}
