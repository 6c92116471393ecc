import { formatMicroUsd } from '../../admin/money';

/** Display forms for the console; inputs are the JSON API's values, so the browser can use them too. */

/** `$12.34` for display (cents, rounded half up); `$0.0042` below a cent so small costs never read as zero. */
export function dollars(micro: number): string {
  const sign = micro < 0 ? '-' : '';
  const abs = Math.abs(micro);
  if (abs > 0 && abs < 10_000) return `${sign}$${formatMicroUsd(abs).replace(/0+$/, '').replace(/\.$/, '')}`;
  const cents = Math.floor((abs + 5_000) / 10_000);
  return `${sign}$${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`;
}

/** An axis label: at least two decimals, more only where the value needs them (`$0.0025`, `$5.00`). */
export function axisDollars(micro: number): string {
  const [whole, fraction] = formatMicroUsd(Math.round(micro)).split('.');
  return `$${Number(whole).toLocaleString('en-US')}.${fraction.replace(/0+$/, '').padEnd(2, '0')}`;
}

/** Every micro-dollar, for ledgers and tooltips: `$0.001234`. */
export function exactDollars(micro: number): string {
  return `${micro < 0 ? '-' : ''}$${formatMicroUsd(Math.abs(micro))}`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `1.2M`, `34k`, `950`: axis labels. */
export function compact(n: number): string {
  if (n >= 1_000_000) return `${trim(n / 1_000_000)}M`;
  if (n >= 1_000) return `${trim(n / 1_000)}k`;
  return trim(n);
}

const trim = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 1 : 0).replace(/\.0$/, ''));

/** Unix seconds as `2025-01-31 14:05 UTC`. */
export function dateTime(seconds: number): string {
  return `${new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Unix seconds as `2025-01-31`. */
export function day(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

/** A limit where 0 means none. */
export function limit(n: number): string {
  return n ? count(n) : 'no limit';
}

/** A price in USD per million tokens as a plain number: at least two decimals, every one it has (`2.50`, `0.075`); `—` for none. */
export function perMtok(usd: number | null): string {
  if (usd === null) return '—';
  const [whole, fraction = ''] = usd.toFixed(6).replace(/0+$/, '').split('.');
  return `${Number(whole).toLocaleString('en-US')}.${fraction.padEnd(2, '0')}`;
}
