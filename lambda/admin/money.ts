/** Exact USD ⇄ micro-USD conversions for the admin API: amounts are integers, never floats. */

export const MICRO_PER_USD = 1_000_000;
/** The largest single top-up: keeps every balance far inside Number.MAX_SAFE_INTEGER micro-USD. */
export const MAX_TOP_UP_USD = 1_000_000_000;

export class AmountError extends Error {
  override name = 'AmountError';
}

/**
 * Parses a USD amount (a JSON number or a decimal string) into integer micro-USD, exactly: the
 * decimal digits are read as written, so 0.1 is 100,000 and never 99,999.99…. Rejects non-finite
 * values, more than 6 decimal places and amounts above MAX_TOP_UP_USD. Sign is kept; callers
 * check the range they need.
 */
export function usdToMicro(value: number | string): number {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new AmountError('must be a finite number');
    text = plainDecimal(value);
  } else {
    text = value.trim();
  }
  const match = /^([+-]?)(\d+)(?:\.(\d*))?$/.exec(text) ?? /^([+-]?)()\.(\d+)$/.exec(text);
  if (!match) throw new AmountError('must be a decimal number of US dollars, e.g. 10 or 2.50');
  const [, sign, whole, fractionRaw = ''] = match;
  const fraction = fractionRaw.replace(/0+$/, '');
  if (fraction.length > 6) throw new AmountError('has more than 6 decimal places (the unit is one micro-dollar)');
  const wholeDigits = whole.replace(/^0+(?=\d)/, '') || '0';
  if (wholeDigits.length > 10 || Number(wholeDigits) > MAX_TOP_UP_USD) {
    throw new AmountError(`must be at most ${MAX_TOP_UP_USD} US dollars`);
  }
  const micro = Number(wholeDigits) * MICRO_PER_USD + Number(fraction.padEnd(6, '0') || '0');
  if (micro > MAX_TOP_UP_USD * MICRO_PER_USD) throw new AmountError(`must be at most ${MAX_TOP_UP_USD} US dollars`);
  return sign === '-' && micro !== 0 ? -micro : micro;
}

/** A JS number as a plain decimal string (no exponent), e.g. 1e-7 → "0.0000001". */
function plainDecimal(n: number): string {
  const s = String(n);
  const exp = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/i.exec(s);
  if (!exp) return s;
  const [, sign, lead, rest = '', powerText] = exp;
  const digits = lead + rest;
  const point = 1 + Number(powerText);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Micro-USD as a JSON number of dollars, for display next to the exact integer. */
export function microToUsd(micro: number): number {
  return micro / MICRO_PER_USD;
}

/** Micro-USD as a fixed six-decimal dollar string, exact for any safe integer: `12.500000`. */
export function formatMicroUsd(micro: number): string {
  const negative = micro < 0;
  const abs = Math.abs(Math.trunc(micro));
  const whole = Math.floor(abs / MICRO_PER_USD);
  const fraction = String(abs % MICRO_PER_USD).padStart(6, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}
