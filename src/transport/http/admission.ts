import type http from 'node:http';
import { isLoopback } from '../../analysis/ip-ranges.js';
import { httpRefusal, type HttpRefusal } from '../../server/surface.js';

export function defaultAllowedHosts(host: string, port: number): string[] {
  const hosts = new Set([`${host}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  if (host.includes(':')) hosts.add(`[${host}]:${port}`);
  return [...hosts];
}

/** Bound to a loopback address (or the name `localhost`): only this machine can reach the port. */
export function boundToLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || isLoopback(h);
}

/**
 * The origins of pages served from this very port under its loopback names. A browser sends one
 * of these only for a page loaded from this server (a same-origin request); a DNS-rebinding page
 * carries its attacker's host name, and another local server's page another port.
 */
export function ownLoopbackOrigins(port: number): string[] {
  return [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`];
}

/**
 * Who may send a request at all, before any path is looked at: the Host and a present Origin on
 * their allow-lists (DNS-rebinding defence), and without bearer authentication a loopback peer.
 */
export class Admission {
  private allowedHosts: ReadonlySet<string>;
  private allowedOrigins: ReadonlySet<string>;

  constructor(
    allowedHosts: readonly string[],
    allowedOrigins: readonly string[],
    private readonly loopbackOnly: boolean,
  ) {
    this.allowedHosts = new Set(allowedHosts);
    this.allowedOrigins = new Set(allowedOrigins.map((o) => new URL(o).origin));
  }

  /** The default list names the port, known only once the server listens (port 0 picks one). */
  allowHosts(hosts: readonly string[]): void {
    this.allowedHosts = new Set(hosts);
  }

  /**
   * Origins allowed besides the configured ones: the server's own loopback origins, known once it
   * listens. Compared as sent: an Origin header is already serialised (RFC 6454 §6.1), so `null`,
   * another scheme, port or host, or any path or trailing slash, matches nothing.
   */
  allowOrigins(origins: readonly string[]): void {
    this.allowedOrigins = new Set([...this.allowedOrigins, ...origins]);
  }

  /** The refusal for this request, or undefined when it may go on. */
  refusal(req: http.IncomingMessage, peer: string): HttpRefusal | undefined {
    if (!this.allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      return httpRefusal('policy_denied', 'host_not_allowed', 'The Host header is not on the allow-list.');
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.allowedOrigins.has(origin)) {
      return httpRefusal('policy_denied', 'origin_not_allowed', 'The Origin is not on the allow-list.');
    }
    if (this.loopbackOnly && !isLoopback(peer)) {
      // SECURITY.md: a non-loopback peer is a caller that could not be identified.
      return httpRefusal('unauthenticated', 'not_loopback', 'Only loopback clients are served unless auth.http is api_key.');
    }
    return undefined;
  }
}
