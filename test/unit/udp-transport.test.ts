import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_DATAGRAM_BYTES, MAX_STREAM_FRAME_BYTES, type PeerAddress } from '../../src/gossip/transport.js';
import { createUdpTransport, type UdpTransport, type UdpTransportOptions } from '../../src/gossip/udp-transport.js';

const open: UdpTransport[] = [];

async function transport(extra: Partial<UdpTransportOptions> = {}): Promise<UdpTransport> {
  const t = await createUdpTransport({ bindAddr: '127.0.0.1', port: 0, ...extra });
  open.push(t);
  return t;
}

after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

/** Resolves with the next `count` datagrams delivered to `t`. */
function nextPackets(t: UdpTransport, count: number): Promise<Array<{ data: Buffer; from: PeerAddress }>> {
  return new Promise((resolve) => {
    const got: Array<{ data: Buffer; from: PeerAddress }> = [];
    t.onPacket((data, from) => {
      got.push({ data: Buffer.from(data), from });
      if (got.length === count) resolve(got);
    });
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function rawConnect(to: PeerAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: to.addr, port: to.port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function header(length: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(length, 0);
  return h;
}

describe('udp transport', () => {
  it('binds port 0 to a real port and reports it', async () => {
    const a = await transport();
    assert.equal(a.local.addr, '127.0.0.1');
    assert.ok(a.local.port > 0 && a.local.port <= 65535);
  });

  it('delivers datagrams both ways with the sender address and counts them', async () => {
    const a = await transport();
    const b = await transport();
    const atB = nextPackets(b, 2);
    a.sendPacket(b.local, Buffer.from('hello'));
    a.sendPacket(b.local, new Uint8Array(MAX_DATAGRAM_BYTES).fill(7));
    const got = await atB;
    assert.deepEqual(
      got.map((p) => p.data.length).sort((x, y) => x - y),
      [5, MAX_DATAGRAM_BYTES],
    );
    for (const p of got) assert.deepEqual(p.from, a.local);
    const atA = nextPackets(a, 1);
    b.sendPacket(a.local, Buffer.from('back'));
    assert.equal((await atA)[0]!.data.toString(), 'back');
    await until(() => a.stats().packetsOut === 2, 'send callbacks');
    assert.equal(a.stats().bytesOut, 5 + MAX_DATAGRAM_BYTES);
    assert.equal(b.stats().packetsIn, 2);
    assert.equal(b.stats().bytesIn, 5 + MAX_DATAGRAM_BYTES);
  });

  it('does not send a datagram larger than MAX_DATAGRAM_BYTES', async () => {
    const a = await transport();
    const b = await transport();
    const atB = nextPackets(b, 1);
    a.sendPacket(b.local, new Uint8Array(MAX_DATAGRAM_BYTES + 1));
    // Datagrams on loopback arrive in order: when the marker is there, the big one would have been too.
    a.sendPacket(b.local, Buffer.from('marker'));
    const [first] = await atB;
    assert.equal(first!.data.toString(), 'marker');
    await sleep(20);
    assert.equal(b.stats().packetsIn, 1);
    assert.equal(a.stats().oversizedOut, 1);
    await until(() => a.stats().packetsOut === 1, 'marker send callback');
  });

  it('drops oversized datagrams that arrive and counts them', async () => {
    const b = await transport();
    const a = await transport();
    const atB = nextPackets(b, 1);
    // Another program (not a hasup transport) can send anything.
    const { createSocket } = await import('node:dgram');
    const raw = createSocket('udp4');
    await new Promise<void>((resolve) => raw.send(Buffer.alloc(4000), b.local.port, b.local.addr, () => resolve()));
    raw.close();
    a.sendPacket(b.local, Buffer.from('after'));
    assert.equal((await atB)[0]!.data.toString(), 'after');
    assert.equal(b.stats().oversizedIn, 1);
    assert.equal(b.stats().packetsIn, 1);
  });

  it('never throws from sendPacket: bad port, wrong family, closed transport', async () => {
    const a = await createUdpTransport({ bindAddr: '127.0.0.1', port: 0 });
    a.sendPacket({ addr: '127.0.0.1', port: 0 }, Buffer.from('x'));
    a.sendPacket({ addr: '127.0.0.1', port: 70000 }, Buffer.from('x'));
    a.sendPacket({ addr: '::1', port: 9 }, Buffer.from('x'));
    await until(() => a.stats().sendErrors === 3, 'three send errors');
    await a.close();
    a.sendPacket({ addr: '127.0.0.1', port: 9 }, Buffer.from('x'));
    assert.equal(a.stats().sendErrors, 4);
    assert.equal(a.stats().packetsOut, 0);
  });

  it('a throwing packet handler is counted, not fatal', async () => {
    const a = await transport();
    const b = await transport();
    let calls = 0;
    b.onPacket(() => {
      calls++;
      throw new Error('handler bug');
    });
    a.sendPacket(b.local, Buffer.from('1'));
    a.sendPacket(b.local, Buffer.from('2'));
    await until(() => calls === 2, 'two handler calls');
    assert.equal(b.stats().handlerErrors, 2);
  });

  it('round-trips a request and its reply, small and large', async () => {
    const a = await transport();
    const b = await transport();
    b.onRequest(async (data, from) => {
      assert.equal(from.addr, '127.0.0.1');
      return Buffer.concat([Buffer.from('re:'), data]);
    });
    const small = await a.request(b.local, Buffer.from('ping'), 2000);
    assert.equal(Buffer.from(small).toString(), 're:ping');
    // Large enough to arrive in many chunks on both sides.
    const big = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const reply = Buffer.from(await a.request(b.local, big, 10_000));
    assert.equal(reply.length, big.length + 3);
    assert.ok(reply.subarray(3).equals(big));
    const empty = await a.request(b.local, new Uint8Array(0), 2000);
    assert.equal(Buffer.from(empty).toString(), 're:');
    assert.equal(b.stats().requestsIn, 3);
    assert.equal(a.stats().requestsOut, 3);
    assert.equal(a.stats().requestErrors, 0);
    await until(() => b.stats().inboundStreams === 0 && b.stats().inboundBufferedBytes === 0, 'server streams closed');
    assert.equal(b.stats().streamErrors, 0);
  });

  it('a handler that answers nothing closes the stream; the requester gets an error', async () => {
    const a = await transport();
    const b = await transport();
    b.onRequest(async () => undefined);
    await assert.rejects(a.request(b.local, Buffer.from('x'), 2000), /closed before a complete frame/);
    assert.equal(a.stats().requestErrors, 1);
  });

  it('a request handler that throws or rejects is counted and the server keeps serving', async () => {
    const a = await transport();
    const b = await transport();
    let mode: 'throw' | 'reject' | 'ok' = 'throw';
    b.onRequest((data) => {
      if (mode === 'throw') throw new Error('sync bug');
      if (mode === 'reject') return Promise.reject(new Error('async bug'));
      return Promise.resolve(data);
    });
    await assert.rejects(a.request(b.local, Buffer.from('x'), 2000));
    mode = 'reject';
    await assert.rejects(a.request(b.local, Buffer.from('x'), 2000));
    mode = 'ok';
    assert.equal(Buffer.from(await a.request(b.local, Buffer.from('still here'), 2000)).toString(), 'still here');
    assert.equal(b.stats().handlerErrors, 2);
  });

  it('closes a stream announcing an oversized frame before buffering any of it', async () => {
    const b = await transport();
    let handled = 0;
    b.onRequest(async () => {
      handled++;
      return undefined;
    });
    const socket = await rawConnect(b.local);
    const closed = once(socket, 'close');
    socket.on('error', () => {});
    socket.write(header(MAX_STREAM_FRAME_BYTES + 1));
    const started = Date.now();
    await closed;
    // Closed on the header alone: no body byte was ever sent, so nothing could have been buffered.
    assert.ok(Date.now() - started < 2000);
    assert.equal(socket.bytesWritten, 4);
    assert.equal(b.stats().oversizedIn, 1);
    assert.equal(handled, 0);
  });

  it('rejects an oversized reply frame on the requesting side', async () => {
    const a = await transport();
    const fake = await rawServer((socket) => {
      socket.once('data', () => socket.write(header(MAX_STREAM_FRAME_BYTES + 1)));
    });
    await assert.rejects(a.request(fake.addr, Buffer.from('x'), 2000), /exceeds/);
    await fake.close();
  });

  it('times out a request to a server that never answers, and destroys the socket', async () => {
    const a = await transport();
    let serverSideClosed = false;
    const fake = await rawServer((socket) => {
      socket.resume();
      socket.on('close', () => (serverSideClosed = true));
    });
    const started = Date.now();
    await assert.rejects(a.request(fake.addr, Buffer.from('hello?'), 300), /timed out after 300 ms/);
    const took = Date.now() - started;
    assert.ok(took >= 290 && took < 2000, `took ${took} ms`);
    await until(() => serverSideClosed, 'client socket closed');
    assert.equal(a.stats().requestErrors, 1);
    await fake.close();
  });

  it('rejects a request when nothing listens', async () => {
    const a = await transport();
    const b = await createUdpTransport({ bindAddr: '127.0.0.1', port: 0 });
    const gone = b.local;
    await b.close();
    await assert.rejects(a.request(gone, Buffer.from('x'), 2000), /ECONNREFUSED/);
    // A bad address is a rejection too, never a synchronous throw.
    const bad = a.request({ addr: '127.0.0.1', port: 70000 }, Buffer.from('x'), 2000);
    await assert.rejects(bad, /gossip request to 127\.0\.0\.1:70000 failed/);
    assert.equal(a.stats().requestErrors, 2);
  });

  it('closes inbound streams that do not deliver a frame in time', async () => {
    const b = await transport({ streamReadTimeoutMs: 150 });
    const socket = await rawConnect(b.local);
    socket.on('error', () => {});
    socket.write(Buffer.from([0, 0, 0, 10, 1, 2])); // promises 10 bytes, sends 2
    const started = Date.now();
    await once(socket, 'close');
    const took = Date.now() - started;
    assert.ok(took >= 100 && took < 2000, `took ${took} ms`);
    assert.equal(b.stats().streamErrors, 1);
  });

  it('limits concurrent inbound streams and recovers when they close', async () => {
    const b = await transport({ maxInboundStreams: 4 });
    b.onRequest(async (data) => data);
    const idle: Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = await rawConnect(b.local);
      s.on('error', () => {});
      idle.push(s);
    }
    await until(() => b.stats().inboundStreams === 4, 'four streams accepted');
    const extra = await rawConnect(b.local);
    extra.on('error', () => {});
    await once(extra, 'close');
    assert.equal(b.stats().streamsRejected, 1);
    for (const s of idle) s.destroy();
    await until(() => b.stats().inboundStreams === 0, 'streams released');
    const a = await transport();
    assert.equal(Buffer.from(await a.request(b.local, Buffer.from('ok'), 2000)).toString(), 'ok');
  });

  it('bounds the bytes buffered across inbound streams', async () => {
    const b = await transport({ maxInboundBufferedBytes: 1000 });
    b.onRequest(async (data) => data);
    const first = await rawConnect(b.local);
    first.on('error', () => {});
    first.write(header(800)); // reserves 800 of the 1000-byte budget, then stalls
    await until(() => b.stats().inboundBufferedBytes === 800, 'first frame admitted');
    const second = await rawConnect(b.local);
    second.on('error', () => {});
    second.write(header(800));
    await once(second, 'close');
    assert.equal(b.stats().streamsRejected, 1);
    first.destroy();
    await until(() => b.stats().inboundBufferedBytes === 0, 'budget released');
    const a = await transport();
    assert.equal((await a.request(b.local, new Uint8Array(800), 2000)).length, 800);
  });

  it('close() rejects pending requests, closes open streams and frees the port', async () => {
    const a = await createUdpTransport({ bindAddr: '127.0.0.1', port: 0 });
    const b = await createUdpTransport({ bindAddr: '127.0.0.1', port: 0 });
    b.onRequest(() => new Promise(() => {})); // never answers
    const pending = a.request(b.local, Buffer.from('x'), 10_000);
    await until(() => b.stats().inboundStreams === 1, 'stream accepted');
    const port = b.local.port;
    await b.close();
    await assert.rejects(pending);
    await a.close();
    await assert.rejects(a.request({ addr: '127.0.0.1', port }, Buffer.from('x'), 1000), /closed/);
    // Both the UDP and the TCP port are free again.
    const again = await createUdpTransport({ bindAddr: '127.0.0.1', port });
    assert.equal(again.local.port, port);
    await again.close();
  });

  it('refuses a port in use with a message naming address and port', async () => {
    const a = await transport();
    await assert.rejects(createUdpTransport({ bindAddr: '127.0.0.1', port: a.local.port }), (err: Error) => {
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${a.local.port}/udp: address already in use`));
      return true;
    });
    // TCP taken but UDP free: the half-bound UDP socket must be released again.
    const tcpOnly = await rawServer(() => {});
    try {
      await assert.rejects(createUdpTransport({ bindAddr: '127.0.0.1', port: tcpOnly.addr.port }), /127\.0\.0\.1:\d+\/tcp: address already in use .*\(EADDRINUSE\)/);
    } finally {
      await tcpOnly.close();
    }
    const t = await createUdpTransport({ bindAddr: '127.0.0.1', port: tcpOnly.addr.port });
    await t.close();
  });

  it('refuses an address not on this host, a non-IP address and an unadvertised wildcard', async () => {
    await assert.rejects(createUdpTransport({ bindAddr: '192.0.2.1', port: 0 }), /192\.0\.2\.1:0\/udp: address not available/);
    await assert.rejects(createUdpTransport({ bindAddr: 'localhost', port: 0 }), /not an IPv4 or IPv6 address/);
    await assert.rejects(createUdpTransport({ bindAddr: '0.0.0.0', port: 0 }), /wildcard/);
  });

  it('advertises the given address, with the bound port when the advertised one is 0', async () => {
    const t = await transport({ bindAddr: '0.0.0.0', advertise: { addr: '127.0.0.1', port: 0 } });
    assert.equal(t.local.addr, '127.0.0.1');
    assert.ok(t.local.port > 0);
    const a = await transport();
    const atT = nextPackets(t, 1);
    a.sendPacket(t.local, Buffer.from('via wildcard'));
    assert.equal((await atT)[0]!.data.toString(), 'via wildcard');
  });

  it('works over IPv6 loopback when the host has it', async (ctx) => {
    let a: UdpTransport;
    try {
      a = await transport({ bindAddr: '::1' });
    } catch {
      ctx.skip('no IPv6 loopback');
      return;
    }
    const b = await transport({ bindAddr: '::1' });
    const atB = nextPackets(b, 1);
    a.sendPacket(b.local, Buffer.from('v6'));
    const [p] = await atB;
    assert.equal(p!.from.addr, '::1');
    b.onRequest(async (d) => d);
    assert.equal(Buffer.from(await a.request(b.local, Buffer.from('v6 req'), 2000)).toString(), 'v6 req');
  });
});

async function rawServer(onConnection: (socket: Socket) => void): Promise<{ addr: PeerAddress; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    addr: { addr: '127.0.0.1', port },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
