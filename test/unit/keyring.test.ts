import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerRingKeyCommands } from '../../src/cli/ring-key.js';
import { WireCodec } from '../../src/gossip/codec.js';
import { ENVELOPE_OVERHEAD, open, seal } from '../../src/gossip/envelope.js';
import { Keyring, RING_KEY_BYTES } from '../../src/gossip/keyring.js';
import {
  addRingKey,
  generateRingKeyFile,
  loadKeyring,
  removeRingKey,
  ringKeyFingerprint,
  useRingKey,
} from '../../src/gossip/keyring-file.js';

const dir = mkdtempSync(join(tmpdir(), 'hasup-keyring-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileSeq = 0;
const freshPath = (): string => join(dir, `ring-${++fileSeq}.key`);

const mode = (path: string): number => statSync(path).mode & 0o777;
const b64 = (key: Buffer): string => key.toString('base64');

function writeKeyFile(text: string, fileMode = 0o600): string {
  const path = freshPath();
  writeFileSync(path, text, { mode: fileMode });
  chmodSync(path, fileMode);
  return path;
}

describe('envelope and keyring rotation', () => {
  const payload = Buffer.from('member rumor');

  it('seals with the primary and opens with any accepted key', () => {
    const k1 = Keyring.generateKey();
    const k2 = Keyring.generateKey();
    const sealed = seal(new Keyring(k1), payload);
    assert.equal(sealed.length, payload.length + ENVELOPE_OVERHEAD);
    const both = new Keyring(k2, [k1]);
    const opened = open(both, sealed);
    assert.ok(opened.ok);
    assert.ok(opened.plaintext.equals(payload));
    // Fresh nonce per packet: sealing twice never yields the same bytes.
    assert.ok(!seal(new Keyring(k1), payload).equals(sealed));
  });

  it('rotates without a moment where two members cannot talk', () => {
    const oldKey = Keyring.generateKey();
    const newKey = Keyring.generateKey();
    const a = new Keyring(oldKey);
    const b = new Keyring(oldKey);
    const talk = (from: Keyring, to: Keyring): boolean => open(to, seal(from, payload)).ok;

    // Step 2: both accept the new key; both still send with the old one.
    a.add(newKey);
    assert.ok(talk(a, b) && talk(b, a));
    b.add(newKey);
    assert.ok(talk(a, b) && talk(b, a));
    // Step 3: a sends with the new key first; b still accepts it, and a still accepts b's old-key packets.
    a.use(newKey);
    assert.ok(a.primary.equals(newKey));
    assert.ok(talk(a, b) && talk(b, a));
    b.use(newKey);
    assert.ok(talk(a, b) && talk(b, a));
    // Step 4: the old key is dropped; packets still sealed with it are refused.
    a.remove(oldKey);
    assert.deepEqual(a.all(), [newKey]);
    assert.ok(talk(a, b) && talk(b, a));
    const straggler = new Keyring(oldKey);
    assert.deepEqual(open(a, seal(straggler, payload)), { ok: false, reason: 'auth_failed' });
  });

  it('sending with a key the receiver does not hold yet fails authentication', () => {
    const a = new Keyring(Keyring.generateKey());
    const b = new Keyring(Keyring.generateKey());
    assert.deepEqual(open(b, seal(a, payload)), { ok: false, reason: 'auth_failed' });
  });

  it('the codec drops and counts a packet sealed with an unknown key', () => {
    const ours = new WireCodec(new Keyring(Keyring.generateKey()));
    const intruder = new WireCodec(new Keyring(Keyring.generateKey()));
    const data = intruder.encode({ ping: { seq: 1, fromId: 'x' } });
    assert.deepEqual(ours.decode(data, 1400), { ok: false, reason: 'auth_failed' });
    assert.equal(ours.dropped.auth_failed, 1);
    const mine = ours.encode({ ping: { seq: 2, fromId: 'y' } });
    const decoded = ours.decode(mine, 1400);
    assert.ok(decoded.ok);
    assert.equal(decoded.packet.ping?.seq, 2);
  });

  it('refuses to remove the sending key and rejects keys of the wrong size', () => {
    const k = Keyring.generateKey();
    const ring = new Keyring(k);
    assert.throws(() => ring.remove(k), /primary/);
    assert.throws(() => new Keyring(Buffer.alloc(16)), /32 bytes/);
    assert.throws(() => ring.add(Buffer.alloc(31)), /32 bytes/);
  });
});

describe('ring-key file', () => {
  it('generates a private file with one key and loads it back', () => {
    const path = freshPath();
    const generated = generateRingKeyFile(path);
    assert.equal(mode(path), 0o600);
    const loaded = loadKeyring(path);
    assert.equal(loaded.all().length, 1);
    assert.ok(loaded.primary.equals(generated.primary));
    assert.equal(loaded.primary.length, RING_KEY_BYTES);
    // Two generated files never share a key.
    assert.ok(!generateRingKeyFile(freshPath()).primary.equals(generated.primary));
  });

  it('refuses to overwrite an existing file unless forced', () => {
    const path = freshPath();
    const first = generateRingKeyFile(path);
    assert.throws(() => generateRingKeyFile(path), /already exists.*--force/);
    assert.ok(loadKeyring(path).primary.equals(first.primary));
    const second = generateRingKeyFile(path, { force: true });
    assert.equal(mode(path), 0o600);
    assert.ok(loadKeyring(path).primary.equals(second.primary));
    assert.ok(!second.primary.equals(first.primary));
  });

  it('add, use and remove rewrite the file atomically with mode 0600', () => {
    const path = freshPath();
    const oldKey = generateRingKeyFile(path).primary;
    const newKey = Keyring.generateKey();

    assert.equal(addRingKey(path, newKey), true);
    assert.equal(addRingKey(path, newKey), false);
    assert.deepEqual(loadKeyring(path).all(), [oldKey, newKey]);
    assert.equal(mode(path), 0o600);

    assert.equal(useRingKey(path, newKey), true);
    assert.equal(useRingKey(path, newKey), false);
    assert.deepEqual(loadKeyring(path).all(), [newKey, oldKey]);
    assert.equal(mode(path), 0o600);

    assert.throws(() => removeRingKey(path, newKey), /sending key and cannot be removed/);
    assert.equal(removeRingKey(path, oldKey), true);
    assert.equal(removeRingKey(path, oldKey), false);
    assert.deepEqual(loadKeyring(path).all(), [newKey]);
    assert.equal(mode(path), 0o600);

    // No temp files left next to the key file.
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  it('reads comments, blank lines, surrounding spaces and CRLF', () => {
    const k1 = Keyring.generateKey();
    const k2 = Keyring.generateKey();
    const path = writeKeyFile(`# ring\r\n\r\n   ${b64(k1)}  \r\n# retired soon\r\n\t${b64(k2)}\r\n`);
    assert.deepEqual(loadKeyring(path).all(), [k1, k2]);
  });

  it('names the line of a bad key without printing any key material', () => {
    const good = Keyring.generateKey();
    const short = Keyring.generateKey().subarray(0, 16);
    const cases: Array<[string, RegExp, string]> = [
      [`${b64(good)}\n# c\nnot*base64!\n`, /line 3: not a base64-encoded key/, 'not*base64!'],
      [`# c\n${b64(good)}\n${b64(short)}\n`, /line 3: key is 16 bytes, ring keys are 32 bytes/, b64(short)],
      [`${b64(good).slice(0, -1)}\n`, /line 1: not a base64-encoded key/, b64(good).slice(0, -1)],
      [`${b64(Buffer.concat([good, good]))}\n`, /line 1: key is 64 bytes/, b64(good)],
    ];
    for (const [text, expected, secret] of cases) {
      const path = writeKeyFile(text);
      assert.throws(
        () => loadKeyring(path),
        (err: Error) => {
          assert.match(err.message, expected);
          assert.ok(err.message.includes(path));
          assert.ok(!err.message.includes(secret), `error leaks key text: ${err.message}`);
          assert.ok(!err.message.includes(b64(good).slice(0, 12)), `error leaks key text: ${err.message}`);
          return true;
        },
      );
    }
  });

  it('refuses a file with no key, a missing file and a directory', () => {
    assert.throws(() => loadKeyring(writeKeyFile('# only comments\n\n')), /holds no key/);
    assert.throws(() => loadKeyring(writeKeyFile('')), /holds no key/);
    const missing = join(dir, 'missing.key');
    assert.throws(() => loadKeyring(missing), (err: Error) => {
      assert.match(err.message, /does not exist/);
      assert.ok(err.message.includes(`hasup ring-key generate ${missing}`));
      return true;
    });
    assert.throws(() => loadKeyring(dir), /not a regular file/);
  });

  it('refuses a file group or others can read, like ssh, and says how to fix it', () => {
    for (const loose of [0o640, 0o604, 0o660, 0o644]) {
      const path = writeKeyFile(`${b64(Keyring.generateKey())}\n`, loose);
      assert.throws(() => loadKeyring(path), (err: Error) => {
        assert.match(err.message, new RegExp(`mode 0${loose.toString(8)}`));
        assert.ok(err.message.includes(`chmod 600 ${path}`));
        return true;
      });
      // The helpers that rewrite the file refuse too, before touching it.
      const before = readFileSync(path, 'utf8');
      assert.throws(() => addRingKey(path, Keyring.generateKey()), /chmod 600/);
      assert.equal(readFileSync(path, 'utf8'), before);
    }
    const ok = writeKeyFile(`${b64(Keyring.generateKey())}\n`, 0o400);
    assert.equal(loadKeyring(ok).all().length, 1);
  });

  it('fingerprints are stable, short and not the key', () => {
    const k = Keyring.generateKey();
    assert.equal(ringKeyFingerprint(k), ringKeyFingerprint(Buffer.from(k)));
    assert.match(ringKeyFingerprint(k), /^[0-9a-f]{16}$/);
    assert.ok(!k.toString('hex').includes(ringKeyFingerprint(k)));
    assert.notEqual(ringKeyFingerprint(k), ringKeyFingerprint(Keyring.generateKey()));
  });
});

describe('hasup ring-key commands', () => {
  async function hasup(...args: string[]): Promise<{ out: string; err: string; error?: Error }> {
    let out = '';
    let err = '';
    const program = new Command()
      .name('hasup')
      .exitOverride()
      .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
    registerRingKeyCommands(program);
    try {
      await program.parseAsync(args, { from: 'user' });
      return { out, err };
    } catch (error) {
      return { out, err, error: error as Error };
    }
  }

  it('walks through a full rotation printing fingerprints only', async () => {
    const ring = freshPath();
    const next = freshPath();
    const gen1 = await hasup('ring-key', 'generate', ring);
    assert.equal(gen1.error, undefined);
    const oldKey = loadKeyring(ring).primary;
    assert.ok(gen1.out.includes(ringKeyFingerprint(oldKey)));
    await hasup('ring-key', 'generate', next);
    const newKey = loadKeyring(next).primary;

    const add = await hasup('ring-key', 'add', ring, next);
    assert.match(add.out, /is now accepted/);
    const use = await hasup('ring-key', 'use', ring, next);
    assert.match(use.out, /now sending with key/);
    assert.deepEqual(loadKeyring(ring).all(), [newKey, oldKey]);

    const oldCopy = writeKeyFile(`${b64(oldKey)}\n`);
    const remove = await hasup('ring-key', 'remove', ring, oldCopy);
    assert.match(remove.out, /removed/);
    assert.deepEqual(loadKeyring(ring).all(), [newKey]);
    assert.equal(mode(ring), 0o600);

    const everything = [gen1, add, use, remove].map((r) => r.out + r.err).join('');
    for (const key of [oldKey, newKey]) {
      assert.ok(!everything.includes(b64(key)) && !everything.includes(key.toString('hex')), 'key material printed');
    }
  });

  it('warns when sending with a key that was not accepted before', async () => {
    const ring = freshPath();
    const other = freshPath();
    generateRingKeyFile(ring);
    generateRingKeyFile(other);
    const use = await hasup('ring-key', 'use', ring, other);
    assert.match(use.out, /was not accepted before/);
  });

  it('fails with a clear error instead of overwriting', async () => {
    const ring = freshPath();
    generateRingKeyFile(ring);
    const again = await hasup('ring-key', 'generate', ring);
    assert.match(again.error?.message ?? '', /already exists/);
    const forced = await hasup('ring-key', 'generate', '--force', ring);
    assert.equal(forced.error, undefined);
  });

  it('documents the rotation in --help', async () => {
    const help = await hasup('ring-key', '--help');
    assert.ok(help.error instanceof CommanderError);
    for (const word of ['generate', 'add', 'use', 'remove', 'Rotating the ring key']) assert.ok(help.out.includes(word), word);
    const missingArg = await hasup('ring-key', 'add', freshPath());
    assert.ok(missingArg.error instanceof CommanderError);
    assert.match(missingArg.err, /missing required argument 'key_file'/);
  });
});
