import net from 'node:net';

/** 127.0.0.0/8, ::1, and the IPv4-mapped form of 127/8 (how a dual-stack socket reports IPv4 peers). */
export function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (net.isIPv4(a)) return a.startsWith('127.');
  return a === '::1';
}
