// @peculiar/x509 resolves its services through tsyringe, which needs the
// Reflect metadata API in place before the library is evaluated: this import
// comes first. Only certificate issuance loads this module (lazily, see
// issue.ts); reading and checking certificates uses node:crypto alone.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;
