import $protobuf from 'protobufjs/minimal.js';

// See wire-types.ts: decode 64-bit integers as numbers, not Long objects.
$protobuf.util.Long = undefined as unknown as typeof $protobuf.util.Long;
$protobuf.configure();
