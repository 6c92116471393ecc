import { createStores } from '../../lambda/runtime';
import { createTestTables, deleteTestTables } from '../support/dynamo';

/** A top-up whose answer is lost and which the client sends again (same bytes, same token): credited once, reported added. */
it('credits a top-up once and reports it added when its answer was lost and it was sent again', async () => {
  const { client, tables } = await createTestTables();
  try {
    const stores = createStores(client, tables);
    await stores.accounts.create({ id: 'acct_lost', name: 'a', tier: 'pro', balanceMicroUsd: 0, status: 'active', createdAtMs: 0 });
    let resent = 0;
    client.intercept(async (operation, input, next) => {
      if (operation !== 'TransactWriteItems' || resent > 0) return next();
      resent++;
      await next(); // applied, answer lost on the way back…
      return next(); // …so the very same write goes again
    });
    expect(await stores.accounts.topUp('acct_lost', 2_000_000, 'inv-lost')).toBe('added');
    expect(resent).toBe(1);
    expect((await stores.accounts.get('acct_lost'))!.balanceMicroUsd).toBe(2_000_000);
    // Another call with the same reference is a duplicate, as before.
    expect(await stores.accounts.topUp('acct_lost', 2_000_000, 'inv-lost')).toBe('duplicate');
    expect((await stores.accounts.get('acct_lost'))!.balanceMicroUsd).toBe(2_000_000);
    expect((await stores.usage.all('acct_lost')).filter((i) => i.kind === 'topup')).toHaveLength(1);
  } finally {
    await deleteTestTables(client, tables);
  }
});

/** A top-up that pays what is owed, whose answer is lost after its owed-aware attempt: applied once, owed paid once. */
it('pays what is owed once when the owed-aware attempt’s answer was lost and it was sent again', async () => {
  const { client, tables } = await createTestTables();
  try {
    const stores = createStores(client, tables);
    await stores.accounts.create({ id: 'acct_owes', name: 'a', tier: 'pro', balanceMicroUsd: 0, status: 'active', createdAtMs: 0 });
    await client.call('UpdateItem', {
      TableName: tables.accounts,
      Key: { account_id: { S: 'acct_owes' } },
      UpdateExpression: 'SET owed = :o',
      ExpressionAttributeValues: { ':o': { N: '1500000' } },
    });
    const tokens: string[] = [];
    let lost = 0;
    client.intercept(async (operation, input, next) => {
      if (operation !== 'TransactWriteItems') return next();
      tokens.push(String((input as { ClientRequestToken?: string }).ClientRequestToken));
      // The first attempt (which assumed nothing owed) fails its condition; the second lands but its answer is lost.
      if (tokens.length !== 2 || lost > 0) return next();
      lost++;
      await next();
      return next();
    });
    expect(await stores.accounts.credit('acct_owes', 2_000_000, 'inv-owes')).toEqual({ result: 'added', owedPaidMicroUsd: 1_500_000, balanceAddedMicroUsd: 500_000 });
    expect(lost).toBe(1);
    // Attempts carry their own tokens; the resend carries its attempt's.
    expect(tokens).toHaveLength(2);
    expect(new Set(tokens).size).toBe(2);
    expect(await stores.accounts.get('acct_owes')).toMatchObject({ balanceMicroUsd: 500_000, owedMicroUsd: 0 });
    expect(await stores.accounts.credit('acct_owes', 2_000_000, 'inv-owes')).toEqual({ result: 'duplicate' });
    const ledger = await stores.usage.all('acct_owes');
    expect(ledger.map((e) => [e.kind, e.amountMicroUsd, e.owedMicroUsd ?? 0]).sort()).toEqual([
      ['owed_payment', -1_500_000, -1_500_000],
      ['topup', 2_000_000, 0],
    ]);
  } finally {
    await deleteTestTables(client, tables);
  }
});
