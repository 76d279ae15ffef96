import type { Command } from 'commander';
import { addRingKey, generateRingKeyFile, loadKeyring, removeRingKey, ringKeyFingerprint, useRingKey } from '../gossip/index.js';

/**
 * `hasup ring-key ...`: create and rotate the gossip ring's keys. Every
 * command names keys by fingerprint only; key material never reaches the
 * terminal or a log.
 */

const ROTATION_HELP = `
Rotating the ring key without downtime (do each step on every member, and
restart hasup there, before starting the next step):
  1. hasup ring-key generate new.key                    once, anywhere; copy new.key to every member
     cp /etc/hasup/ring.key old.key                     keep the old key, to name it in step 4
  2. hasup ring-key add    /etc/hasup/ring.key new.key  members accept the new key
  3. hasup ring-key use    /etc/hasup/ring.key new.key  members send with it; the old key is still accepted
  4. hasup ring-key remove /etc/hasup/ring.key old.key  members stop accepting the old key
Skipping ahead (sending with a key some member does not accept yet) cuts
members off the ring until they catch up.
`;

export function registerRingKeyCommands(program: Command): void {
  const ringKey = program
    .command('ring-key')
    .description('create and rotate the keys that encrypt and authenticate gossip between members')
    .addHelpText('after', ROTATION_HELP);

  ringKey
    .command('generate')
    .description('write a new ring-key file holding one fresh random key (mode 0600)')
    .argument('<file>', 'ring-key file to create')
    .option('--force', 'replace an existing file (its keys are lost: members still using them are cut off)')
    .addHelpText('after', '\nCopy the file to every member (keep mode 0600) and point `hasup run --ring-key` at it.\n')
    .action(function (this: Command, file: string, flags: { force?: boolean }) {
      const keyring = generateRingKeyFile(file, { force: flags.force === true });
      say(this, `wrote ${file} with a new ring key (fingerprint ${ringKeyFingerprint(keyring.primary)})`);
    });

  ringKey
    .command('add')
    .description('accept the primary key of KEY_FILE as well, without sending with it yet (rotation step 2)')
    .argument('<file>', 'ring-key file to change')
    .argument('<key_file>', 'ring-key file whose first key is the one to add (e.g. from `ring-key generate`)')
    .action(function (this: Command, file: string, keyFile: string) {
      const key = loadKeyring(keyFile).primary;
      const fp = ringKeyFingerprint(key);
      say(this, addRingKey(file, key) ? `${file}: key ${fp} is now accepted` : `${file}: key ${fp} was already accepted; nothing changed`);
    });

  ringKey
    .command('use')
    .description('send with the primary key of KEY_FILE; the previous sending key stays accepted (rotation step 3)')
    .argument('<file>', 'ring-key file to change')
    .argument('<key_file>', 'ring-key file whose first key is the one to send with')
    .action(function (this: Command, file: string, keyFile: string) {
      const key = loadKeyring(keyFile).primary;
      const fp = ringKeyFingerprint(key);
      const wasAccepted = loadKeyring(file).all().some((k) => k.equals(key));
      if (!useRingKey(file, key)) {
        say(this, `${file}: key ${fp} was already the sending key; nothing changed`);
        return;
      }
      say(this, `${file}: now sending with key ${fp}`);
      if (!wasAccepted) say(this, `note: key ${fp} was not accepted before; members that do not accept it yet cannot read this member`);
    });

  ringKey
    .command('remove')
    .description('stop accepting the primary key of KEY_FILE (rotation step 4); the sending key cannot be removed')
    .argument('<file>', 'ring-key file to change')
    .argument('<key_file>', 'ring-key file whose first key is the one to remove')
    .action(function (this: Command, file: string, keyFile: string) {
      const key = loadKeyring(keyFile).primary;
      const fp = ringKeyFingerprint(key);
      say(this, removeRingKey(file, key) ? `${file}: key ${fp} removed` : `${file}: key ${fp} was not in the file; nothing changed`);
    });
}

function say(cmd: Command, line: string): void {
  cmd.configureOutput().writeOut?.(`${line}\n`);
}
