import { Authenticator, DEFAULT_AHEAD_MS, DEFAULT_POSITIVE_TTL_MS, sameKeyTerms, type KeyLookup } from '../../lambda/auth';
import { displayPrefix, generateApiKey, hashApiKey } from '../../lambda/auth/api-key';
import type { KeyRecord } from '../../lambda/store/keys';

/** The keys table as the authenticator reads it: each read answered when the test says so. */
class ControlledKeys implements KeyLookup {
  readonly records = new Map<string, KeyRecord>();
  readonly reads: Array<{ keyHash: string; answer: () => void }> = [];
  getByHash(keyHash: string): Promise<KeyRecord | undefined> {
    // The item as it is when the read reaches the table (now), answered later.
    const record = this.records.get(keyHash);
    const snapshot = record && { ...record };
    return new Promise((resolve) => this.reads.push({ keyHash, answer: () => resolve(snapshot) }));
  }
  answerAll(): void {
    for (const r of this.reads.splice(0)) r.answer();
  }
}

/** Each setup's key secret, by its table. */
const SECRET_OF = new WeakMap<ControlledKeys, string>();

const flush = () => new Promise((r) => setImmediate(r));

function setup() {
  let nowMs = 1_000_000;
  const keys = new ControlledKeys();
  const auth = new Authenticator(keys, { now: () => nowMs });
  const secret = generateApiKey();
  const keyHash = hashApiKey(secret);
  keys.records.set(keyHash, { keyHash, keyId: 'key_1', accountId: 'acct_1', name: 'k', prefix: displayPrefix(secret), status: 'active', createdAtMs: 0 });
  const authenticate = () => auth.authenticate(`Bearer ${secret}`);
  SECRET_OF.set(keys, secret);
  return { keys, auth, keyHash, authenticate, advance: (ms: number) => (nowMs += ms) };
}

describe('the key cache (refresh ahead of expiry)', () => {
  it('reads a key in use again in the background past half its trust, so the next request past the first read\'s expiry does not wait', async () => {
    const { keys, authenticate, advance } = setup();
    const first = authenticate();
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    await expect(first).resolves.toMatchObject({ keyId: 'key_1' });

    advance(DEFAULT_POSITIVE_TTL_MS * 0.4);
    await authenticate();
    expect(keys.reads).toHaveLength(0); // still young: no read

    advance(DEFAULT_POSITIVE_TTL_MS * 0.3);
    // Past half: answered from the cache at once, the read goes out behind it, once the request's
    // own work up to its upstream call is done (a macrotask later), not on its way.
    await expect(authenticate()).resolves.toMatchObject({ keyId: 'key_1' });
    expect(keys.reads).toHaveLength(0);
    await flush();
    expect(keys.reads).toHaveLength(1);
    // One background read at a time.
    await authenticate();
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    await flush();

    // Past the first read's expiry, within the refresh's: no read waited for.
    advance(DEFAULT_POSITIVE_TTL_MS * 0.5);
    await expect(authenticate()).resolves.toMatchObject({ keyId: 'key_1' });
    expect(keys.reads).toHaveLength(0);
  });

  it('a key disabled is refused once the entry read before the change expires, however late a refresh answered', async () => {
    const { keys, keyHash, authenticate, advance } = setup();
    const first = authenticate();
    keys.answerAll();
    await first;
    advance(DEFAULT_POSITIVE_TTL_MS * 0.6);
    await authenticate(); // sends a refresh, still unanswered
    await flush();
    expect(keys.reads).toHaveLength(1);
    // Disabled after the refresh read the item; its answer comes only much later (a Lambda frozen between invocations).
    keys.records.get(keyHash)!.status = 'disabled';
    advance(DEFAULT_POSITIVE_TTL_MS * 2);
    keys.answerAll();
    await flush();
    // The refresh's answer is trusted from when it was sent, long expired: the request reads the item, and is refused.
    const late = authenticate();
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    await expect(late).rejects.toMatchObject({ status: 401 });
  });

  it('a refresh answered after the key was forgotten does not bring it back', async () => {
    const { keys, auth, keyHash, authenticate, advance } = setup();
    const first = authenticate();
    keys.answerAll();
    await first;
    advance(DEFAULT_POSITIVE_TTL_MS * 0.6);
    await authenticate();
    await flush();
    expect(keys.reads).toHaveLength(1);
    auth.forget(keyHash);
    advance(1);
    keys.answerAll();
    await flush();
    // Forgotten: the next request reads the item again.
    const next = authenticate();
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    await next;
  });
});

describe('a key given ahead of its read (authenticateAhead)', () => {
  it('within its trust: the cached key, nothing to confirm, no read', async () => {
    const { keys, auth, authenticate, advance } = setup();
    const secret = await primed(keys, authenticate);
    advance(DEFAULT_POSITIVE_TTL_MS * 0.4);
    const ahead = await auth.authenticateAhead(`Bearer ${secret}`);
    expect(ahead).toMatchObject({ key: { keyId: 'key_1' } });
    expect(ahead.confirm).toBeUndefined();
    expect(keys.reads).toHaveLength(0);
  });

  it('past its trust, within a minute of its last read: the cached key at once, read again when `confirm` is first called', async () => {
    const { keys, auth, keyHash, authenticate, advance } = setup();
    const secret = await primed(keys, authenticate);
    advance(DEFAULT_POSITIVE_TTL_MS + 1);
    const ahead = await auth.authenticateAhead(`Bearer ${secret}`);
    expect(ahead.key.keyId).toBe('key_1');
    expect(keys.reads).toHaveLength(0);
    keys.records.get(keyHash)!.name = 'renamed';
    const confirmed = ahead.confirm!();
    expect(keys.reads).toHaveLength(1);
    // Called again, and a request meanwhile: the same read.
    expect(ahead.confirm!()).toBe(confirmed);
    const plain = authenticate();
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    await expect(confirmed).resolves.toMatchObject({ keyId: 'key_1', name: 'renamed' });
    await expect(plain).resolves.toMatchObject({ keyId: 'key_1' });
  });

  it('a key disabled since its last read: `confirmed` is its 401', async () => {
    const { keys, auth, keyHash, authenticate, advance } = setup();
    const secret = await primed(keys, authenticate);
    keys.records.get(keyHash)!.status = 'disabled';
    advance(DEFAULT_POSITIVE_TTL_MS + 1);
    const ahead = await auth.authenticateAhead(`Bearer ${secret}`);
    const confirmed = ahead.confirm!();
    keys.answerAll();
    await expect(confirmed).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/disabled/) });
    // The entry now says disabled: refused from the cache, never ahead.
    await expect(auth.authenticateAhead(`Bearer ${secret}`)).rejects.toMatchObject({ status: 401 });
    expect(keys.reads).toHaveLength(0);
  });

  it('read more than a minute ago, refused, unknown or forgotten: read first, as authenticate does', async () => {
    const { keys, auth, keyHash, authenticate, advance } = setup();
    const secret = await primed(keys, authenticate);
    advance(DEFAULT_AHEAD_MS + 1);
    const old = auth.authenticateAhead(`Bearer ${secret}`);
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    expect(await old).toEqual({ key: expect.objectContaining({ keyId: 'key_1' }) });

    auth.forget(keyHash);
    advance(1);
    const forgotten = auth.authenticateAhead(`Bearer ${secret}`);
    expect(keys.reads).toHaveLength(1);
    keys.answerAll();
    expect((await forgotten).confirm).toBeUndefined();

    const unknown = auth.authenticateAhead(`Bearer ${generateApiKey()}`);
    keys.answerAll();
    await expect(unknown).rejects.toMatchObject({ status: 401 });
    await expect(auth.authenticateAhead('Basic abc')).rejects.toMatchObject({ status: 401 });
  });

  it('sameKeyTerms: what the key may do, not its month spend', () => {
    const base: KeyRecord = { keyHash: 'h', keyId: 'k', accountId: 'a', name: 'n', prefix: 'p', status: 'active', createdAtMs: 1, rpm: 10, spendCapMicroUsd: 5, spendMonth: 202612, spendUsedMicroUsd: 1 };
    expect(sameKeyTerms(base, { ...base, spendUsedMicroUsd: 4, spendMonth: 202701 })).toBe(true);
    // Renamed in the console: it may do the same.
    expect(sameKeyTerms(base, { ...base, name: 'renamed', prefix: 'other', createdAtMs: 2 })).toBe(true);
    expect(sameKeyTerms(base, { ...base, rpm: 11 })).toBe(false);
    expect(sameKeyTerms(base, { ...base, models: ['m'] })).toBe(false);
    expect(sameKeyTerms(base, { ...base, status: 'disabled' })).toBe(false);
    expect(sameKeyTerms(base, { ...base, spendCapMicroUsd: undefined })).toBe(false);
    expect(sameKeyTerms(base, { ...base, accountTier: 'pro' })).toBe(false);
  });
});

/** The key read once (its entry fresh); returns its secret. */
async function primed(keys: ControlledKeys, authenticate: () => Promise<KeyRecord>): Promise<string> {
  const first = authenticate();
  keys.answerAll();
  await first;
  return SECRET_OF.get(keys)!;
}

describe('hashApiKey', () => {
  it('is the SHA-256 hex of the key, with Node’s one-shot crypto.hash and without it (Node 20 before 20.12)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeCrypto = require('node:crypto') as typeof import('node:crypto');
    const secret = generateApiKey();
    const expected = nodeCrypto.createHash('sha256').update(secret).digest('hex');
    const oneShot = jest.spyOn(nodeCrypto, 'hash');
    try {
      expect(hashApiKey(secret)).toBe(expected);
      expect(oneShot).toHaveBeenCalledWith('sha256', secret, 'hex');
    } finally {
      oneShot.mockRestore();
    }
    const oneShotHash = nodeCrypto.hash;
    (nodeCrypto as { hash?: unknown }).hash = undefined;
    try {
      expect(hashApiKey(secret)).toBe(expected);
    } finally {
      nodeCrypto.hash = oneShotHash;
    }
  });
});
