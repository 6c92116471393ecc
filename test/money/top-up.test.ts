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
