import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A TCP socket in LISTEN state, as Linux reports it in /proc/net/tcp and /proc/net/tcp6. */
export interface ListeningSocket {
  /** IPv4 dotted or IPv6 (IPv4-mapped as ::ffff:a.b.c.d) */
  address: string;
  port: number;
  inode: string;
}

const LISTEN = '0A';

/** Every listening TCP socket on this machine (all processes), from /proc/net/tcp{,6}. */
export function listeningSockets(): ListeningSocket[] {
  const sockets: ListeningSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== LISTEN) continue;
      const [hexAddress, hexPort] = fields[1].split(':');
      sockets.push({ address: decodeAddress(hexAddress), port: parseInt(hexPort, 16), inode: fields[9] });
    }
  }
  return sockets;
}

/** The listening sockets that process `pid` holds open. */
export function listeningSocketsOf(pid: number): ListeningSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // Closed while we read.
    }
  }
  return listeningSockets().filter((s) => inodes.has(s.inode));
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

// /proc prints each 32-bit word of the address in host (little-endian on x86 and arm64) byte order.
function decodeAddress(hex: string): string {
  const words = hex.toLowerCase().match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  if (words.length === 1) return words[0].match(/../g)!.map((b) => parseInt(b, 16)).join('.');
  const groups = words.join('').match(/.{4}/g)!;
  if (groups.slice(0, 5).every((g) => g === '0000') && groups[5] === 'ffff') {
    return `::ffff:${words[3].match(/../g)!.map((b) => parseInt(b, 16)).join('.')}`;
  }
  if (groups.every((g) => g === '0000')) return '::';
  if (groups.slice(0, 7).every((g) => g === '0000') && groups[7] === '0001') return '::1';
  return groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}
