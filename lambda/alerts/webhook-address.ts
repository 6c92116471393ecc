import { BlockList, isIP } from 'node:net';

/**
 * Where a low-balance webhook may point. Locally anything (a receiver on 127.0.0.1 is the usual
 * test); in AWS only https to public addresses: private, loopback, link-local (the instance
 * metadata service), shared, multicast and reserved ranges are refused, for IPv4 and IPv6, after
 * DNS resolution (and again when connecting: see `guardedLookup`), so a webhook is no way into
 * the gateway's network (SSRF).
 */

/** Built on the first check, not at init: the chat function loads this module but rarely checks an address. */
let blocked: BlockList | undefined;
const blockedRanges = (): BlockList => (blocked ??= blockList());

function blockList(): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.88.99.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ] as const) {
    list.addSubnet(net, prefix, 'ipv4');
  }
  for (const [net, prefix] of [
    ['::', 128],
    ['::1', 128],
    ['100::', 64],
    ['2001::', 23],
    ['2001:db8::', 32],
    ['fc00::', 7],
    ['fe80::', 10],
    ['fec0::', 10],
    ['ff00::', 8],
  ] as const) {
    list.addSubnet(net, prefix, 'ipv6');
  }
  return list;
}

/** An IPv4 address carried inside an IPv6 one (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, compatible `::a.b.c.d`). */
function embeddedIpv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::|::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1], 16);
    const lo = parseInt(hex[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

/** True for an address a webhook may reach from AWS: a public unicast address. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !blockedRanges().check(address, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(address);
    if (v4) return isPublicAddress(v4);
    // IPv4-mapped and NAT64 ranges in any other spelling are refused outright.
    if (blockedRanges().check(address, 'ipv6')) return false;
    const mapped = new BlockList();
    mapped.addSubnet('::ffff:0:0', 96, 'ipv6');
    mapped.addSubnet('64:ff9b::', 96, 'ipv6');
    return !mapped.check(address, 'ipv6');
  }
  return false;
}

export type LookupAll = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

// node:dns/promises on the first lookup: about 2 CPU-ms of a cold start otherwise, for a rare webhook.
const defaultLookup: LookupAll = (hostname) =>
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('node:dns/promises') as typeof import('node:dns/promises')).lookup(hostname, { all: true, verbatim: true });

export interface WebhookAddressPolicy {
  /** Local mode: any scheme of http(s) and any address. In AWS false. */
  allowPrivate: boolean;
  /** DNS resolution (tests give their own). */
  lookup?: LookupAll;
}

export class WebhookAddressError extends Error {}

/**
 * Checks a webhook URL before it is saved: http(s) without credentials; with `allowPrivate`
 * false, https only and every address the host resolves to public.
 */
export async function checkWebhookUrl(raw: string, policy: WebhookAddressPolicy): Promise<URL> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookAddressError('is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookAddressError('must be an http(s) URL');
  if (url.username || url.password) throw new WebhookAddressError('must not carry a user name or password');
  if (policy.allowPrivate) return url;
  if (url.protocol !== 'https:') throw new WebhookAddressError('must use https');
  await publicAddresses(url.hostname, policy.lookup ?? defaultLookup);
  return url;
}

/** Every address `hostname` resolves to, on condition that all are public. */
export async function publicAddresses(hostname: string, lookup: LookupAll = defaultLookup): Promise<Array<{ address: string; family: number }>> {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  let addresses: Array<{ address: string; family: number }>;
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host);
    } catch {
      throw new WebhookAddressError(`names a host that does not resolve (${host})`);
    }
  }
  if (!addresses.length) throw new WebhookAddressError(`names a host that does not resolve (${host})`);
  const refused = addresses.find((a) => !isPublicAddress(a.address));
  if (refused) throw new WebhookAddressError(`resolves to ${refused.address}, a private, loopback or link-local address`);
  return addresses;
}
