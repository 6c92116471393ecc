import { randomHex } from '../../lambda/observability/random-hex';

describe('randomHex (request ids from a pooled CSPRNG draw)', () => {
  it('gives hex of the asked length, never the same twice across many pool refills', () => {
    const seen = new Set<string>();
    // 12 bytes an id, 4,096 a pool: about 30 refills.
    for (let i = 0; i < 10_000; i++) {
      const id = randomHex(12);
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(10_000);
    // Odd sizes straddle a refill without reusing bytes: still all distinct.
    const odd = new Set(Array.from({ length: 2_000 }, () => randomHex(7)));
    expect(odd.size).toBe(2_000);
  });

  it('spreads its digits evenly (a constant or counter would not)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 2_000; i++) for (const digit of randomHex(16)) counts.set(digit, (counts.get(digit) ?? 0) + 1);
    expect(counts.size).toBe(16);
    // 64,000 digits, 4,000 expected of each: far outside this only if the bytes are not random.
    for (const n of counts.values()) expect(Math.abs(n - 4_000)).toBeLessThan(400);
  });

  it('refuses more bytes than its pool holds', () => {
    expect(() => randomHex(5_000)).toThrow(RangeError);
  });
});
