import { createSocket, type RemoteInfo, type Socket as DatagramSocket } from 'node:dgram';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { formatHostPort } from './address.js';
import {
  MAX_DATAGRAM_BYTES,
  MAX_STREAM_FRAME_BYTES,
  type PacketHandler,
  type PeerAddress,
  type RequestHandler,
  type Transport,
} from './transport.js';

/**
 * The real network transport: gossip datagrams over UDP, push-pull requests
 * over TCP, both on the same address and port. Everything that arrives is
 * untrusted (it has not been authenticated yet), so every limit here is
 * enforced before memory is spent on it, and nothing a peer sends can throw
 * out of a socket callback.
 */

/** Anything pino-shaped; the transport only reports its own trouble. */
export interface TransportLog {
  warn(fields: object, msg: string): void;
  debug?(fields: object, msg: string): void;
}

export interface UdpTransportOptions {
  /** Address to bind UDP and TCP to; IPv4 or IPv6 literal. */
  bindAddr: string;
  /** 0 picks a free port (reported in `local`). */
  port: number;
  /** What peers should use to reach us; needed when binding a wildcard address. Port 0 means the bound port. */
  advertise?: PeerAddress;
  log?: TransportLog;
  /** Inbound stream connections served at once; more are closed on arrival. Default 64. */
  maxInboundStreams?: number;
  /** Time an inbound stream has to deliver its whole request frame. Default 10 s. */
  streamReadTimeoutMs?: number;
  /** Upper bound on request bytes buffered across all inbound streams. Default 64 MiB. */
  maxInboundBufferedBytes?: number;
}

export interface UdpTransportStats {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  /** Datagrams that could not be sent (socket errors, bad addresses, closed transport). */
  sendErrors: number;
  /** Datagrams we refused to send because they exceed MAX_DATAGRAM_BYTES. */
  oversizedOut: number;
  /** Datagrams and stream length prefixes that exceeded the limits and were dropped. */
  oversizedIn: number;
  /** Inbound streams that failed: reset, timed out, truncated, trailing bytes, reply write failed. */
  streamErrors: number;
  /** Inbound streams closed on arrival because the concurrency or buffer budget was exhausted. */
  streamsRejected: number;
  /** Inbound stream connections open right now. */
  inboundStreams: number;
  /** Request bytes announced by inbound streams being read or served right now. */
  inboundBufferedBytes: number;
  /** Inbound streams whose request was handed to the request handler. */
  requestsIn: number;
  /** Packet or request handlers that threw or rejected. */
  handlerErrors: number;
  requestsOut: number;
  /** Outbound requests that failed or timed out. */
  requestErrors: number;
}

export interface UdpTransport extends Transport {
  stats(): UdpTransportStats;
}

const FRAME_HEADER_BYTES = 4;
const DEFAULT_MAX_INBOUND_STREAMS = 64;
const DEFAULT_STREAM_READ_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_INBOUND_BUFFERED_BYTES = 64 * 1024 * 1024;
/** Port 0 is chosen by the UDP bind; TCP may find that port taken, so retry a few times. */
const EPHEMERAL_BIND_ATTEMPTS = 5;
/** A misbehaving handler must be visible without letting a peer flood the log. */
const HANDLER_WARN_INTERVAL_MS = 10_000;

export async function createUdpTransport(opts: UdpTransportOptions): Promise<UdpTransport> {
  const family = isIP(opts.bindAddr);
  if (family === 0) throw new Error(`gossip bind address "${opts.bindAddr}" is not an IPv4 or IPv6 address`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`gossip port ${opts.port} is not a port number (0-65535)`);
  }
  if (isWildcard(opts.bindAddr) && opts.advertise === undefined) {
    throw new Error(`gossip bind address ${opts.bindAddr} is a wildcard; give an address to advertise to peers`);
  }
  const attempts = opts.port === 0 ? EPHEMERAL_BIND_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    const udp = await bindDatagram(family === 6 ? 'udp6' : 'udp4', opts.bindAddr, opts.port);
    const port = udp.address().port;
    try {
      const tcp = await listenStream(opts.bindAddr, port);
      return new SocketTransport(opts, udp, tcp, port);
    } catch (err) {
      udp.close();
      if (attempt >= attempts || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '0:0:0:0:0:0:0:0';
}

function listenError(err: unknown, addr: string, port: number, proto: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'EADDRINUSE'
      ? 'address already in use (another hasup or program holds this port)'
      : code === 'EADDRNOTAVAIL'
        ? 'address not available (it is not configured on this host)'
        : code === 'EACCES'
          ? 'permission denied'
          : (err as Error).message;
  const wrapped = new Error(`cannot listen for gossip on ${formatHostPort(addr, port)}/${proto}: ${why}${code ? ` (${code})` : ''}`);
  (wrapped as NodeJS.ErrnoException).code = code;
  return wrapped;
}

function bindDatagram(type: 'udp4' | 'udp6', addr: string, port: number): Promise<DatagramSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type, reuseAddr: false });
    const onError = (err: Error): void => {
      socket.close();
      reject(listenError(err, addr, port, 'udp'));
    };
    socket.once('error', onError);
    socket.bind(port, addr, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function listenStream(addr: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ allowHalfOpen: false });
    const onError = (err: Error): void => reject(listenError(err, addr, port, 'tcp'));
    server.once('error', onError);
    server.listen({ host: addr, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

function frameHeader(length: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  return header;
}

class FrameError extends Error {
  constructor(
    message: string,
    readonly kind: 'oversized' | 'budget' | 'protocol',
  ) {
    super(message);
  }
}

/**
 * Reads exactly one length-prefixed frame. The length is checked (and
 * `admit` consulted) before a single body byte is kept, so a peer cannot make
 * us buffer more than the limit by announcing a huge frame. Rejects when the
 * socket closes or errors first; the caller owns timeouts (it destroys the
 * socket, which ends the read).
 */
function readOneFrame(socket: Socket, maxBytes: number, admit: (length: number) => boolean = () => true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let buffered = 0;
    let expected: number | undefined;
    const finish = (err: Error | undefined, frame?: Buffer): void => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('end', onEnd);
      if (err) reject(err);
      else resolve(frame!);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      buffered += chunk.length;
      if (expected === undefined) {
        if (buffered < FRAME_HEADER_BYTES) return;
        const head = Buffer.concat(chunks);
        chunks.length = 0;
        chunks.push(head);
        expected = head.readUInt32BE(0);
        if (expected > maxBytes) {
          finish(new FrameError(`frame of ${expected} bytes exceeds the ${maxBytes}-byte limit`, 'oversized'));
          return;
        }
        if (!admit(expected)) {
          finish(new FrameError('inbound stream buffer budget exhausted', 'budget'));
          return;
        }
      }
      const total = FRAME_HEADER_BYTES + expected;
      if (buffered < total) return;
      if (buffered > total) {
        finish(new FrameError('unexpected bytes after the frame', 'protocol'));
        return;
      }
      socket.pause();
      finish(undefined, Buffer.concat(chunks, total).subarray(FRAME_HEADER_BYTES));
    };
    const onError = (err: Error): void => finish(err);
    const onEnd = (): void => finish(new FrameError('connection closed before a complete frame', 'protocol'));
    const onClose = (): void => finish(new FrameError('connection closed before a complete frame', 'protocol'));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.once('close', onClose);
  });
}

class SocketTransport implements UdpTransport {
  readonly local: PeerAddress;
  private packetHandler: PacketHandler | undefined;
  private requestHandler: RequestHandler | undefined;
  private readonly counters: Omit<UdpTransportStats, 'inboundStreams' | 'inboundBufferedBytes'> = {
    packetsOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    bytesIn: 0,
    sendErrors: 0,
    oversizedOut: 0,
    oversizedIn: 0,
    streamErrors: 0,
    streamsRejected: 0,
    requestsIn: 0,
    handlerErrors: 0,
    requestsOut: 0,
    requestErrors: 0,
  };
  private readonly inbound = new Set<Socket>();
  private readonly outbound = new Set<Socket>();
  private readonly maxInboundStreams: number;
  private readonly streamReadTimeoutMs: number;
  private readonly maxInboundBufferedBytes: number;
  private inboundBufferedBytes = 0;
  private lastHandlerWarning = -Infinity;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly opts: UdpTransportOptions,
    private readonly udp: DatagramSocket,
    private readonly tcp: Server,
    boundPort: number,
  ) {
    this.local = opts.advertise
      ? { addr: opts.advertise.addr, port: opts.advertise.port === 0 ? boundPort : opts.advertise.port }
      : { addr: opts.bindAddr, port: boundPort };
    this.maxInboundStreams = opts.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS;
    this.streamReadTimeoutMs = opts.streamReadTimeoutMs ?? DEFAULT_STREAM_READ_TIMEOUT_MS;
    this.maxInboundBufferedBytes = opts.maxInboundBufferedBytes ?? DEFAULT_MAX_INBOUND_BUFFERED_BYTES;
    udp.on('message', (msg, rinfo) => this.receiveDatagram(msg, rinfo));
    // Asynchronous socket errors (ICMP unreachable and the like) only mean a send failed.
    udp.on('error', (err) => {
      this.counters.sendErrors++;
      this.opts.log?.debug?.({ err: err.message }, 'gossip udp socket error');
    });
    tcp.on('connection', (socket) => this.serveStream(socket));
    tcp.on('error', (err) => this.opts.log?.warn({ err: err.message }, 'gossip tcp server error'));
  }

  stats(): UdpTransportStats {
    return { ...this.counters, inboundStreams: this.inbound.size, inboundBufferedBytes: this.inboundBufferedBytes };
  }

  onPacket(handler: PacketHandler): void {
    this.packetHandler = handler;
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  sendPacket(to: PeerAddress, data: Uint8Array): void {
    if (data.length > MAX_DATAGRAM_BYTES) {
      this.counters.oversizedOut++;
      this.opts.log?.debug?.({ bytes: data.length, limit: MAX_DATAGRAM_BYTES }, 'gossip datagram too large, not sent');
      return;
    }
    if (this.closing) {
      this.counters.sendErrors++;
      return;
    }
    try {
      this.udp.send(data, to.port, to.addr, (err) => {
        if (err) {
          this.counters.sendErrors++;
          this.opts.log?.debug?.({ to: formatHostPort(to.addr, to.port), err: err.message }, 'gossip datagram send failed');
        } else {
          this.counters.packetsOut++;
          this.counters.bytesOut += data.length;
        }
      });
    } catch (err) {
      // Synchronous refusals: bad port, address of the wrong family, socket closed.
      this.counters.sendErrors++;
      this.opts.log?.debug?.({ to: formatHostPort(to.addr, to.port), err: (err as Error).message }, 'gossip datagram send failed');
    }
  }

  request(to: PeerAddress, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const target = formatHostPort(to.addr, to.port);
    if (this.closing) return Promise.reject(new Error(`gossip request to ${target}: transport is closed`));
    if (data.length > MAX_STREAM_FRAME_BYTES) {
      this.counters.requestErrors++;
      return Promise.reject(new Error(`gossip request to ${target}: ${data.length}-byte frame exceeds the ${MAX_STREAM_FRAME_BYTES}-byte limit`));
    }
    this.counters.requestsOut++;
    let socket: Socket;
    try {
      socket = connect({ host: to.addr, port: to.port, allowHalfOpen: false });
    } catch (err) {
      // Refused before any I/O, e.g. a port out of range in a bad member record.
      this.counters.requestErrors++;
      return Promise.reject(prefixed(err as Error, target));
    }
    this.outbound.add(socket);
    // Keep a listener for the socket's whole life so a late error can never go unhandled.
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy(new Error(`gossip request to ${target} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.write(Buffer.concat([frameHeader(data.length), data]));
    return readOneFrame(socket, MAX_STREAM_FRAME_BYTES)
      .catch((err: Error) => {
        this.counters.requestErrors++;
        throw prefixed(err, target);
      })
      .finally(() => {
        clearTimeout(timer);
        socket.destroy();
        this.outbound.delete(socket);
      });
  }

  close(): Promise<void> {
    this.closing ??= this.closeSockets();
    return this.closing;
  }

  private async closeSockets(): Promise<void> {
    for (const socket of [...this.inbound, ...this.outbound]) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }

  private receiveDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length > MAX_DATAGRAM_BYTES) {
      this.counters.oversizedIn++;
      return;
    }
    this.counters.packetsIn++;
    this.counters.bytesIn += msg.length;
    const handler = this.packetHandler;
    if (!handler) return;
    try {
      handler(msg, { addr: rinfo.address, port: rinfo.port });
    } catch (err) {
      this.handlerFailed('packet', err);
    }
  }

  private serveStream(socket: Socket): void {
    socket.on('error', () => {});
    if (this.closing || this.inbound.size >= this.maxInboundStreams) {
      this.counters.streamsRejected++;
      socket.destroy();
      return;
    }
    this.inbound.add(socket);
    const from: PeerAddress = { addr: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    let reserved = 0;
    const release = (): void => {
      this.inboundBufferedBytes -= reserved;
      reserved = 0;
    };
    socket.once('close', () => {
      release();
      this.inbound.delete(socket);
    });
    const deadline = setTimeout(() => socket.destroy(new FrameError('request frame not received in time', 'protocol')), this.streamReadTimeoutMs);
    const admit = (length: number): boolean => {
      if (this.inboundBufferedBytes + length > this.maxInboundBufferedBytes) return false;
      reserved = length;
      this.inboundBufferedBytes += length;
      return true;
    };
    readOneFrame(socket, MAX_STREAM_FRAME_BYTES, admit).then(
      (frame) => {
        clearTimeout(deadline);
        // From here on the peer only has to read our reply; one that stalls is cut off.
        socket.setTimeout(this.streamReadTimeoutMs, () => {
          this.counters.streamErrors++;
          socket.destroy();
        });
        void this.answer(socket, frame, from).finally(release);
      },
      (err: Error) => {
        clearTimeout(deadline);
        const kind = err instanceof FrameError ? err.kind : 'protocol';
        if (kind === 'oversized') this.counters.oversizedIn++;
        else if (kind === 'budget') this.counters.streamsRejected++;
        else this.counters.streamErrors++;
        this.opts.log?.debug?.({ from: formatHostPort(from.addr, from.port), err: err.message }, 'gossip stream dropped');
        socket.destroy();
      },
    );
  }

  private async answer(socket: Socket, frame: Buffer, from: PeerAddress): Promise<void> {
    const handler = this.requestHandler;
    if (!handler) {
      socket.destroy();
      return;
    }
    this.counters.requestsIn++;
    let reply: Uint8Array | undefined;
    try {
      reply = await handler(frame, from);
    } catch (err) {
      this.handlerFailed('request', err);
      socket.destroy();
      return;
    }
    if (socket.destroyed) return;
    if (reply === undefined) {
      socket.end();
      return;
    }
    if (reply.length > MAX_STREAM_FRAME_BYTES) {
      this.counters.streamErrors++;
      this.opts.log?.warn({ bytes: reply.length, limit: MAX_STREAM_FRAME_BYTES }, 'gossip reply too large, not sent');
      socket.destroy();
      return;
    }
    // Close as soon as the reply is flushed: the exchange is over, and a peer
    // that never sends its FIN must not keep the slot.
    socket.end(Buffer.concat([frameHeader(reply.length), reply]), () => socket.destroy());
  }

  private handlerFailed(kind: 'packet' | 'request', err: unknown): void {
    this.counters.handlerErrors++;
    const now = performance.now();
    if (now - this.lastHandlerWarning < HANDLER_WARN_INTERVAL_MS) return;
    this.lastHandlerWarning = now;
    this.opts.log?.warn(
      { kind, err: err instanceof Error ? err.message : String(err), handlerErrors: this.counters.handlerErrors },
      'gossip handler failed; packet dropped',
    );
  }
}

function prefixed(err: Error, target: string): Error {
  return err.message.startsWith('gossip request') ? err : new Error(`gossip request to ${target} failed: ${err.message}`);
}
