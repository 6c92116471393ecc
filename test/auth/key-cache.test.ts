import { Authenticator, DEFAULT_POSITIVE_TTL_MS, type KeyLookup } from '../../lambda/auth';
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

const flush = () => new Promise((r) => setImmediate(r));

function setup() {
  let nowMs = 1_000_000;
  const keys = new ControlledKeys();
  const auth = new Authenticator(keys, { now: () => nowMs });
  const secret = generateApiKey();
  const keyHash = hashApiKey(secret);
  keys.records.set(keyHash, { keyHash, keyId: 'key_1', accountId: 'acct_1', name: 'k', prefix: displayPrefix(secret), status: 'active', createdAtMs: 0 });
  const authenticate = () => auth.authenticate(`Bearer ${secret}`);
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
