import { DynamoError, type Dynamo } from '../../lambda/store/dynamo';
import type { Admitted } from '../../lambda/money/types';
import { parseCatalog } from '../../lambda/catalog';
import { DEFAULT_CATALOG } from '../../lambda/catalog/defaults';
import { parseChatCompletionRequest } from '../../lambda/contract/request';
import { Settlements } from '../../lambda/money/settlement';
import { HoldSweeper } from '../../lambda/money/sweeper';
import { abandonedSettlement, requestSettlement } from '../../lambda/money/settlement';
import { warmTokenizer } from '../../lambda/money/tokens';
import { createStores, type Stores } from '../../lambda/runtime';
import type { AccountsStore, AdmitWrite } from '../../lambda/store/accounts';
import type { KeyRecord } from '../../lambda/store/keys';
import type { TableNames } from '../../lambda/store/tables';
import { createDynamoClient } from '../../lambda/store/client';
import { fundedAccount } from '../support/accounts';
import { createTestTables, testDynamoEndpoint } from '../support/dynamo';
import { chatAdmission, completed, moneyOver } from '../support/money';

const catalog = parseCatalog(DEFAULT_CATALOG, 'test');
const model = catalog.get('gpt-4o-mini')!;
const CREDITS = 1_000_000;

interface Injection {
  command: string;
  count: number;
  make: () => Error;
  when: 'before' | 'after';
  fired: number;
}

interface Fixture {
  client: Dynamo;
  tables: TableNames;
  stores: Stores;
  accountId: string;
  key: KeyRecord;
  /** Makes the client throw `make()` in place of the next `count` calls of one command (before or after sending it). */
  inject(command: string, count: number, make: () => Error, when: 'before' | 'after'): Injection;
  /** The inputs of every call of one command the client sent. */
  sent(command: string): Array<Record<string, unknown>>;
}

async function setup(limits = { rpm: 1000, tpm: 10_000_000 }, credits = CREDITS): Promise<Fixture> {
  const { tables } = await createTestTables();
  // A client of its own, with the fault hook on it.
  const client = createDynamoClient(testDynamoEndpoint());
  const injections: Injection[] = [];
  const calls: Array<{ command: string; input: Record<string, unknown> }> = [];
  client.intercept(async (operation, input, next) => {
    calls.push({ command: operation, input });
    const injection = injections.find((i) => i.command === operation && i.fired < i.count);
    if (!injection) return next();
    injection.fired++;
    if (injection.when === 'after') await next();
    throw injection.make();
  });
  const inject = (command: string, count: number, make: () => Error, when: 'before' | 'after') => {
    const injection = { command, count, make, when, fired: 0 };
    injections.push(injection);
    return injection;
  };
  const stores = createStores(client, tables);
  await stores.tiers.seed();
  const { accountId, record: key } = await fundedAccount(stores, { tier: 'enterprise', creditsMicroUsd: credits, createdAtMs: 0, ...limits });
  const sent = (command: string) => calls.filter((c) => c.command === command).map((c) => c.input);
  return { client, tables, stores, accountId, key, inject, sent };
}

const request = (extra: object = {}) =>
  parseChatCompletionRequest({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 10, ...extra });

/** The balance is exactly the ledger, and nothing is held once everything is settled. */
async function expectSettledBooks(f: Fixture): Promise<void> {
  const account = (await f.stores.accounts.get(f.accountId))!;
  const ledger = await f.stores.usage.all(f.accountId);
  expect(account.balanceMicroUsd).toBe(ledger.reduce((s, i) => s + i.amountMicroUsd, 0));
  expect(account.heldMicroUsd).toBe(0);
  expect(account.inFlight).toBe(0);
  expect(await f.stores.holds.ofAccount(f.accountId)).toEqual([]);
}

const lostAnswer = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
/** What DynamoDB answers when the write met another transaction on the same item. */
const conflict = () =>
  new DynamoError('TransactionCanceledException', 'Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]', 400, 1, {
    CancellationReasons: [{ Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' }, { Code: 'None' }],
  });

beforeAll(() => warmTokenizer());

describe('holds as items of their own', () => {
  it('keeps each admitted request’s hold in the holds table, and the account’s sums, until it is settled', async () => {
    const f = await setup();
    const { admission } = moneyOver(f.stores, f.tables);
    const now = Date.now();
    const a = await admission.admit(chatAdmission('req_holda', f.key, model, request(), now));
    await admission.admit(chatAdmission('req_holdb', f.key, model, request(), now));
    const holds = await f.stores.holds.ofAccount(f.accountId);
    expect(holds.map((h) => h.requestId).sort()).toEqual(['req_holda', 'req_holdb']);
    const held = holds.reduce((s, h) => s + h.holdMicroUsd, 0);
    const account = (await f.stores.accounts.get(f.accountId))!;
    expect(account).toMatchObject({ heldMicroUsd: held, inFlight: 2, balanceMicroUsd: CREDITS - held });
    expect(holds[0].deadlineMs).toBe(now + 900_000);

    await a.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    expect((await f.stores.holds.ofAccount(f.accountId)).map((h) => h.requestId)).toEqual(['req_holdb']);
    expect((await f.stores.accounts.get(f.accountId))!.inFlight).toBe(1);
  });

  it('keeps the account item the same size with hundreds of holds outstanding', async () => {
    const f = await setup();
    const { admission } = moneyOver(f.stores, f.tables);
    // The item as DynamoDB holds it (not as parsed, which would hide an attribute that grows).
    const sizeOf = async () => JSON.stringify((await f.client.call('GetItem', { TableName: f.tables.accounts, Key: { account_id: { S: f.accountId } } })).Item).length;
    const before = await sizeOf();
    // (A thousand, with the write units measured, in scale.test.ts.)
    await Promise.all(Array.from({ length: 300 }, (_, i) => admission.admit(chatAdmission(`req_size${i}`, f.key, model, request(), Date.now()))));
    expect((await f.stores.holds.ofAccount(f.accountId)).length).toBe(300);
    // The sums grow by digits, never by entries (300 entries would add thousands of bytes). The
    // digits: the sums, and the minute's counters when the window rolls over meanwhile (a CI run
    // once measured exactly 20 more bytes).
    expect(await sizeOf()).toBeLessThan(before + 64);
  }, 180_000);
});

describe('an admission whose answer is lost', () => {
  it('is sent again with the same ClientRequestToken and holds once', async () => {
    const f = await setup();
    const { admission } = moneyOver(f.stores, f.tables);
    // A warm instance: its view of the account is current, so its first write is the one that lands.
    const warm = await admission.admit(chatAdmission('req_warm1', f.key, model, request(), Date.now()));
    // The write is applied, then the answer is lost on the way back.
    const injected = f.inject('TransactWriteItems', 1, lostAnswer, 'after');
    const admitted = await admission.admit(chatAdmission('req_lost1', f.key, model, request(), Date.now()));
    expect(injected.fired).toBe(1);
    expect(f.sent('TransactWriteItems').map((input) => input.ClientRequestToken).filter((t) => String(t).startsWith('req_lost1'))).toEqual([
      'req_lost1.0',
      'req_lost1.0',
    ]);
    const account = (await f.stores.accounts.get(f.accountId))!;
    expect(account.counts.requests).toBe(2);
    expect(account.inFlight).toBe(2);
    expect(await f.stores.holds.ofAccount(f.accountId)).toHaveLength(2);
    await warm.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await admitted.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await expectSettledBooks(f);
  });

  it('is recognised by another instance sending a different write for the same request', async () => {
    const f = await setup();
    const first = await moneyOver(f.stores, f.tables).admission.admit(chatAdmission('req_twice', f.key, model, request(), Date.now()));
    // A fresh instance (nothing cached, another token) sends the same request's admission.
    const again = await moneyOver(f.stores, f.tables).admission.admit(chatAdmission('req_twice', f.key, model, request(), Date.now()));
    expect(again.outputTokens).toBe(first.outputTokens);
    const account = (await f.stores.accounts.get(f.accountId))!;
    expect(account.counts.requests).toBe(1);
    expect(account.inFlight).toBe(1);
    await first.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await again.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await expectSettledBooks(f);
    expect((await f.stores.usage.all(f.accountId)).filter((i) => i.kind === 'request')).toHaveLength(1);
  });

  it('gives the hold back when the write landed but the resends get a 4xx and the client an error', async () => {
    const f = await setup();
    let sends = 0;
    const store: Pick<AccountsStore, 'admit'> = {
      async admit(w: AdmitWrite) {
        sends++;
        if (sends <= 2) {
          // The first write of a fresh instance meets a window it did not know of and is refused;
          // the second lands, and its answer never arrives.
          const applied = await f.stores.accounts.admit(w);
          if (sends === 1) return applied;
          expect(applied).toMatchObject({ ok: true });
          throw lostAnswer();
        }
        throw Object.assign(new Error('Throughput exceeds the current capacity'), {
          name: 'ThrottlingException',
          $metadata: { httpStatusCode: 400 },
        });
      },
    };
    const { admission } = moneyOver(f.stores, f.tables, Date.now, { store });
    await expect(admission.admit(chatAdmission('req_lost4xx', f.key, model, request(), Date.now()))).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
    expect(await f.stores.holds.ofAccount(f.accountId)).toHaveLength(1);
    // The release runs in the background a moment later.
    for (let i = 0; i < 50 && (await f.stores.holds.ofAccount(f.accountId)).length; i++) await new Promise((r) => setTimeout(r, 100));
    await expectSettledBooks(f);
    expect((await f.stores.accounts.get(f.accountId))!.balanceMicroUsd).toBe(CREDITS);
    const [released] = (await f.stores.usage.all(f.accountId)).filter((i) => i.kind === 'request');
    expect(released).toMatchObject({ id: 'req_lost4xx', status: 'failed', amountMicroUsd: 0 });
  });
});

describe('TransactionConflictException (real DynamoDB, injected here)', () => {
  it('retries an admission another transaction held back, and admits once', async () => {
    const f = await setup();
    const injected = f.inject('TransactWriteItems', 3, conflict, 'before');
    const admitted = await moneyOver(f.stores, f.tables).admission.admit(chatAdmission('req_conflict', f.key, model, request(), Date.now()));
    expect(injected.fired).toBe(3);
    expect((await f.stores.accounts.get(f.accountId))!.counts.requests).toBe(1);
    await admitted.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await expectSettledBooks(f);
  });

  it('retries a settlement another transaction held back, and settles once', async () => {
    const f = await setup();
    const admitted = await moneyOver(f.stores, f.tables).admission.admit(chatAdmission('req_sconflict', f.key, model, request(), Date.now()));
    const injected = f.inject('TransactWriteItems', 2, conflict, 'before');
    await admitted.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    expect(injected.fired).toBe(2);
    await expectSettledBooks(f);
    expect((await f.stores.usage.all(f.accountId)).filter((i) => i.kind === 'request')).toHaveLength(1);
  });
});

describe('the sweeper', () => {
  function sweeperOver(f: Fixture, now: () => number, graceMs = 0) {
    return new HoldSweeper({
      holds: f.stores.holds,
      accounts: f.stores.accounts,
      settlements: new Settlements({ store: f.stores.accounts, retryDelaysMs: [], now }),
      keysTable: f.tables.keys,
      graceMs,
      now,
    });
  }

  it('settles a hold past its deadline as abandoned: the prompt charged, the rest refunded', async () => {
    const f = await setup();
    let now = Date.now();
    const { admission } = moneyOver(f.stores, f.tables, () => now, { maxRequestMs: 1_000 });
    await admission.admit(chatAdmission('req_abandon', f.key, model, request(), now));
    const [hold] = await f.stores.holds.ofAccount(f.accountId);
    const sweeper = sweeperOver(f, () => now, 60_000);
    expect(await sweeper.sweep()).toMatchObject({ abandoned: 0 });
    now += 1_000 + 60_001;
    expect(await sweeper.sweep()).toMatchObject({ abandoned: 1 });
    await expectSettledBooks(f);
    const [item] = (await f.stores.usage.all(f.accountId)).filter((i) => i.kind === 'request');
    expect(item).toMatchObject({ id: 'req_abandon', status: 'abandoned', amountMicroUsd: -hold.promptMicroUsd, promptTokens: hold.promptTokens });
    expect(hold.promptMicroUsd).toBeGreaterThan(0);
    expect(hold.promptMicroUsd).toBeLessThan(hold.holdMicroUsd);
  });

  it('races a late settlement of the same request safely: exactly one settles the hold, and a swept one is corrected once (late_settlement)', async () => {
    for (let round = 0; round < 10; round++) {
      const f = await setup();
      const { admission } = moneyOver(f.stores, f.tables, Date.now, { maxRequestMs: 1 });
      const admitted = await admission.admit(chatAdmission(`req_race${round}`, f.key, model, request(), Date.now() - 10));
      // Both have the hold in hand and write at the same time: the sweeper's scan found it, and the request ends.
      const [hold] = await f.stores.holds.ofAccount(f.accountId);
      const sweeperWrites = new Settlements({ store: f.stores.accounts, retryDelaysMs: [] });
      const [swept] = await Promise.all([
        sweeperWrites.apply(abandonedSettlement(hold, f.tables.keys)),
        admitted.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 })),
      ]);
      const items = (await f.stores.usage.all(f.accountId)).filter((i) => i.kind === 'request');
      expect(typeof swept).toBe('object');
      const sweeperWon = typeof swept === 'object' && swept.settled;
      // The sweeper winning is followed by the request's difference, as an item of its own (issue 17).
      expect(items.map((i) => i.status).sort()).toEqual(sweeperWon ? ['abandoned', 'late_settlement'] : ['completed']);
      const cost = requestSettlement(hold, model, completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 })).costMicroUsd;
      expect(items.reduce((sum, i) => sum + i.amountMicroUsd, 0)).toBe(-cost);
      await expectSettledBooks(f);
    }
  }, 60_000);

  it('gives back whole a hold whose admission landed after its request had given up and been released', async () => {
    const f = await setup();
    const now = Date.now();
    const { admission } = moneyOver(f.stores, f.tables, () => now, { maxRequestMs: 1 });
    // Released first (the write was thought lost), then the same write lands after all.
    const admitted = await admission.admit(chatAdmission('req_orphan', f.key, model, request(), now - 10));
    const [hold] = await f.stores.holds.ofAccount(f.accountId);
    await admitted.settle({ status: 'failed', httpStatus: 503, completionText: '', latencyMs: 1, stream: false });
    await f.stores.accounts.admit({
      accountId: f.accountId,
      nowMs: now,
      believed: (await f.stores.accounts.get(f.accountId))!.counts,
      tokens: hold.rateTokens,
      limits: { tier: 'enterprise', rpm: 1000, tpm: 10_000_000 },
      hold,
      token: 'req_orphan.late',
    });
    expect(await f.stores.holds.ofAccount(f.accountId)).toHaveLength(1);
    expect(await sweeperOver(f, () => now + 100).sweep()).toMatchObject({ orphans: 1, abandoned: 0 });
    await expectSettledBooks(f);
    expect((await f.stores.accounts.get(f.accountId))!.balanceMicroUsd).toBe(CREDITS);
  });
});

describe('token corrections', () => {
  it('land on the previous minute once the window has rolled over, instead of being dropped', async () => {
    const f = await setup({ rpm: 1000, tpm: 10_000 });
    let now = 7_000 * 60_000 + 50_000;
    const { admission } = moneyOver(f.stores, f.tables, () => now);
    const a = await admission.admit(chatAdmission('req_corr_a', f.key, model, request({ max_tokens: 2000 }), now));
    const counted = (await f.stores.accounts.get(f.accountId))!.counts.tokens;
    now += 20_000; // the next minute; another request rolls the item over
    await admission.admit(chatAdmission('req_corr_b', f.key, model, request({ max_tokens: 10 }), now));
    expect((await f.stores.accounts.get(f.accountId))!.counts.prevTokens).toBe(counted);
    await a.settle(completed({ prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 }));
    expect((await f.stores.accounts.get(f.accountId))!.counts.prevTokens).toBe(10);
  });

  it('correct a capped key’s own counter too', async () => {
    const f = await setup();
    const capped: KeyRecord = { ...f.key, keyHash: `${f.key.keyHash}_cap`, keyId: `${f.key.keyId}_cap`, tpm: 100_000 };
    await f.stores.keys.create(capped);
    const { admission } = moneyOver(f.stores, f.tables);
    const admitted = await admission.admit(chatAdmission('req_keycorr', capped, model, request({ max_tokens: 500 }), Date.now()));
    const counter = async () => (await f.stores.keys.getCounts(capped.keyHash))!.tokens;
    expect(await counter()).toBeGreaterThan(500);
    await admitted.settle(completed({ prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 }));
    expect(await counter()).toBe(10);
  });
});

/**
 * Found by the soak (a 503 on its nearly empty account, once): a write refused for its balance
 * whose old item also showed a counter moved since it was believed (the previous minute's tokens,
 * corrected by settlements of that minute's requests in the first seconds of a new one) was taken
 * as stale only. Its hold stayed at the model's maximum, each try spent one of the tries, and the
 * client got 503 'The account is too busy' instead of a lower output limit or a 402.
 */
describe('a nearly empty account while the previous minute settles', () => {
  /**
   * 3,000 µUSD left, less than one request at gpt-4o-mini's maximum output (16,384 tokens) holds:
   * of the account's balance, or (`spendCapped`) of a key's monthly spend cap, the key with a
   * tokens limit of its own (so its counter, corrected by the same settlements, is written too).
   * Before each of this instance's first `interfering` writes, one of the ending minute's requests
   * settles and another request of the key is admitted. `corrections`: the settled requests used
   * fewer tokens than held (the previous minute's count goes down) or more, their prompt counted
   * low (it goes up).
   */
  async function churn(interfering: number, spendCapped: boolean, corrections: 'down' | 'up', opts: { maxTokens?: number; conflictsAfter?: number } = {}) {
    const f = await setup({ rpm: 1000, tpm: 10_000_000 }, spendCapped ? CREDITS : 3_000);
    if (spendCapped) {
      f.key = { ...f.key, keyHash: `${f.key.keyHash}_sp`, keyId: `${f.key.keyId}_sp`, tpm: 10_000_000, spendCapMicroUsd: 3_000 };
      await f.stores.keys.create(f.key);
    }
    let now = 7_100 * 60_000 + 50_000;
    // Request ids of their own (a ClientRequestToken is DynamoDB Local's whatever the tables), short
    // enough for its 36 characters with the try's number.
    const id = (name: string) => `${name}${f.accountId.slice(-12)}`;
    // Another instance: requests admitted in the ending minute, settled after the next one began.
    const other = moneyOver(f.stores, f.tables, () => now).admission;
    const ending: Admitted[] = [];
    for (let i = 0; i < interfering; i++) ending.push(await other.admit(chatAdmission(id(`e${i}_`), f.key, model, request({ max_tokens: 1 }), now)));
    now += 11_000;
    const taken = [await other.admit(chatAdmission(id('r_'), f.key, model, request({ max_tokens: 1 }), now))];
    const used = corrections === 'down' ? { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } : { prompt_tokens: 60, completion_tokens: 1, total_tokens: 61 };
    let writes = 0;
    let settled = 0;
    const store: Pick<AccountsStore, 'admit'> = {
      async admit(w: AdmitWrite) {
        const i = writes++;
        // Real DynamoDB's TransactionConflict (another transaction on the item) for every write after these.
        if (opts.conflictsAfter !== undefined && i >= opts.conflictsAfter) return { ok: false, reason: 'conflict' };
        if (i < interfering) {
          await ending[settled++].settle(completed(used));
          taken.push(await other.admit(chatAdmission(id(`t${i}_`), f.key, model, request({ max_tokens: 40 }), now)));
        }
        return f.stores.accounts.admit(w);
      },
    };
    const { admission } = moneyOver(f.stores, f.tables, () => now, { store });
    // No max_tokens (unless given): the hold may be lowered to what the balance pays.
    const answer = await admission.admit(chatAdmission(id('c_'), f.key, model, request({ max_tokens: opts.maxTokens }), now)).catch((err: Error) => err);
    for (const a of [...ending.slice(settled), ...taken]) await a.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    if (!(answer instanceof Error)) await answer.settle(completed({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }));
    await expectSettledBooks(f);
    return { answer, writes };
  }

  for (const corrections of ['down', 'up'] as const) {
    for (const [short, spendCapped] of [['the balance', false], ['a key’s spend cap', true]] as const) {
      it(`lowers the output limit to what ${short} pays, the previous minute’s count moving ${corrections} with each refusal, and admits`, async () => {
        const { answer, writes } = await churn(7, spendCapped, corrections);
        // Admitted: a refusal fails the test with its own message.
        if (answer instanceof Error) throw answer;
        expect(writes).toBe(8);
        expect(answer.outputTokens).toBeGreaterThan(0);
        expect(answer.outputTokens).toBeLessThan(model.maxOutputTokens);
      });

      it(`answers 402, not 503, when ${short} keeps falling short through every try, the count moving ${corrections}`, async () => {
        const { answer } = await churn(12, spendCapped, corrections);
        expect(answer).toMatchObject({ status: 402, code: 'insufficient_quota' });
        expect((answer as Error).message).toContain(spendCapped ? 'spend cap' : 'balance');
      });
    }
  }

  it('reads a refusal from the item at once when the previous minute’s count went down: 402 with the balance, after one try that was stale', async () => {
    // max_tokens named: the hold cannot be lowered, and the balance cannot pay it.
    const { answer, writes } = await churn(12, false, 'down', { maxTokens: 16_000 });
    expect(answer).toMatchObject({ status: 402, code: 'insufficient_quota' });
    expect((answer as Error).message).toMatch(/and the balance is \$0\.00\d+/);
    // The first write believed an empty previous minute (stale), the second is read from the item.
    expect(writes).toBe(2);
  });

  it('answers 503 when conflicts use up the tries after a refusal for the balance: nothing of the balance is known since', async () => {
    const { answer, writes } = await churn(12, false, 'down', { conflictsAfter: 1 });
    expect(answer).toMatchObject({ status: 503, code: 'server_overloaded' });
    expect(writes).toBe(14);
  });
});
