/**
 * The generated wire types, loaded with protobufjs set to plain numbers for
 * 64-bit fields. Whenever the `long` package is installed, protobufjs would
 * otherwise decode uint64 fields (and bake their defaults into the message
 * prototypes at load time) as Long objects, while the generated types promise
 * numbers. The switch must happen before the generated module is evaluated,
 * hence this module: import the types from here, never from src/gossip/gen directly.
 * Values above 2^53 decode to unsafe integers, which validatePacket rejects.
 */
import './protobuf-numbers.js';

export { hasup } from './gen/proto.js';
