// npm run bench's verdict on CPU a request at one rate (issue 22): the gateway below Portkey in the
// whole and in more of the paired rounds than chance gives (a one-sided sign test), since one
// process's CPU a request swings by half between two rounds on the shared machine.
import { commonRateVerdict, signTest } from '../../bench/report';

// Binomial(n, 1/2) tail computed another way: exact integers.
const tail = (below: number, n: number) => {
  const fact = (k: number): bigint => (k <= 1 ? 1n : BigInt(k) * fact(k - 1));
  let sum = 0n;
  for (let k = below; k <= n; k++) sum += fact(n) / (fact(k) * fact(n - k));
  return Number(sum) / 2 ** n;
};

const row = (rounds: number[], failed = 0) => ({ rps: 260, cpuMsPerRequest: rounds.reduce((a, b) => a + b, 0) / rounds.length, roundsCpuMsPerRequest: rounds, requests: 520 * rounds.length, failed });

describe('the common-rate verdict', () => {
  it('signTest is the binomial tail', () => {
    for (const n of [1, 3, 12, 20, 30]) for (let below = 0; below <= n; below++) expect(signTest(below, n)).toBeCloseTo(tail(below, n), 12);
    expect(signTest(10, 12)).toBeLessThan(0.05);
    expect(signTest(9, 12)).toBeGreaterThan(0.05);
    // npm run bench's 20 rounds: 15 below pass, 14 do not.
    expect(signTest(15, 20)).toBeLessThan(0.05);
    expect(signTest(14, 20)).toBeGreaterThan(0.05);
  });

  it('passes 10 rounds of 12 below, not 9, and never a total above or a failed request', () => {
    const portkey = Array(12).fill(1.2);
    const gateway = (belowRounds: number) => portkey.map((p, i) => (i < belowRounds ? p * 0.8 : p * 1.05));
    const verdict = (g: number[], p = portkey, failed = 0) => commonRateVerdict({ rate: 260, connections: 16, gateway: row(g, failed), portkey: row(p) }, '');
    expect(verdict(gateway(10)).pass).toBe(true);
    expect(verdict(gateway(10)).value).toContain('below in 10 of 12 rounds');
    expect(verdict(gateway(9)).pass).toBe(false);
    expect(verdict(gateway(10), portkey, 1).pass).toBe(false);
    // Below in 11 rounds by a hair, above by far in one: the whole is above.
    const hair = portkey.map((p, i) => (i === 0 ? p * 3 : p * 0.99));
    expect(verdict(hair).pass).toBe(false);
    // Rounds that do not pair (a side short of a round) never pass.
    expect(verdict(gateway(12), portkey.slice(1)).pass).toBe(false);
  });
});
