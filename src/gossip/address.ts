import { isIP } from 'node:net';
import type { PeerAddress } from './transport.js';

export const DEFAULT_GOSSIP_PORT = 9638;

/**
 * Parses "ADDR", "ADDR:PORT", "[V6]" or "[V6]:PORT". Only literal IP
 * addresses are accepted: a name lookup inside the cluster's own configuration
 * can stall for seconds where there is no DNS, which would look like a dead
 * member.
 */
export function parsePeerAddress(text: string, defaultPort = DEFAULT_GOSSIP_PORT): PeerAddress {
  const input = text.trim();
  let host = input;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(input);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (input.split(':').length === 2) {
    [host, portText] = input.split(':') as [string, string];
  }
  if (isIP(host) === 0) {
    throw new Error(`"${text}" is not an IP address (use a literal IPv4 or IPv6 address, optionally with :PORT)`);
  }
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`"${text}" has an invalid port (1-65535)`);
  }
  return { addr: host, port };
}

export function formatPeerAddress(peer: PeerAddress): string {
  return formatHostPort(peer.addr, peer.port);
}

/**
 * HOST:PORT with an IPv6 host in brackets ([fd00::1]:9638), as URLs, etcd,
 * Elasticsearch, HAProxy and log lines want it. The one formatter for an
 * address and a port anywhere in hasup: the gossip library owns it because
 * it sits below everything else and imports nothing of hasup.
 */
export function formatHostPort(host: string, port: number | string): string {
  return `${bracketHost(host)}:${port}`;
}

/** An IPv6 address in brackets, anything else as it is: the host part of a URL. */
export function bracketHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}
