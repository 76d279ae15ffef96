/**
 * How members exchange bytes. The membership engine only sees this interface:
 * real members use UDP datagrams plus TCP request/response (udp-transport.ts),
 * simulations use an in-memory network with latency, loss and partitions
 * (sim/sim-network.ts). Payloads are already sealed envelopes.
 */
export interface PeerAddress {
  addr: string;
  port: number;
}

export type PacketHandler = (data: Uint8Array, from: PeerAddress) => void;

/**
 * A stream request carries one sealed frame and gets one sealed frame back
 * (push-pull state exchange). Returning undefined closes without an answer.
 */
export type RequestHandler = (data: Uint8Array, from: PeerAddress) => Promise<Uint8Array | undefined>;

export interface Transport {
  /** The address other members reach this one at. */
  readonly local: PeerAddress;
  /** Best-effort datagram; never throws (errors are counted by the transport). */
  sendPacket(to: PeerAddress, data: Uint8Array): void;
  /** Reliable request/response over a stream; rejects on error or timeout. */
  request(to: PeerAddress, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  onPacket(handler: PacketHandler): void;
  onRequest(handler: RequestHandler): void;
  close(): Promise<void>;
}

/** Largest datagram we send: fits an Ethernet MTU with IP/UDP headers. */
export const MAX_DATAGRAM_BYTES = 1400;
/** Largest stream frame accepted (push-pull of a very large ring). */
export const MAX_STREAM_FRAME_BYTES = 16 * 1024 * 1024;
