import { writeUnitsInFlight } from '../../bench/in-flight';
import { testDynamoEndpoint } from '../support/dynamo';

/**
 * Cost flat in concurrency (issue 10): the write units of each admission and settlement, as
 * DynamoDB reports them (ReturnConsumedCapacity), with 10 and with 1,000 requests of one
 * account in flight. Holds are items of their own, so the account item, which every admission
 * and settlement writes, stays the same size. `npm run bench` prints the same figures.
 */
it('costs the same write units per request with 10 and with 1,000 requests of one account in flight, and admits all 1,000', async () => {
  // About 20 s here; DynamoDB Local applies transactions one at a time, so a busy machine takes longer.
  const [ten, thousand] = await writeUnitsInFlight(testDynamoEndpoint(), [10, 1000], 240_000);
  expect(ten).toMatchObject({ admittedTogether: 10, accountInFlight: 10, answered200: 10 });
  expect(thousand).toMatchObject({ admittedTogether: 1000, accountInFlight: 1000, answered200: 1000 });
  expect(ten.admissionUnitsPerRequest).toBeGreaterThan(0);
  expect(ten.settlementUnitsPerRequest).toBeGreaterThan(0);
  expect(Math.abs(thousand.admissionUnitsPerRequest - ten.admissionUnitsPerRequest) / ten.admissionUnitsPerRequest).toBeLessThanOrEqual(0.3);
  expect(Math.abs(thousand.settlementUnitsPerRequest - ten.settlementUnitsPerRequest) / ten.settlementUnitsPerRequest).toBeLessThanOrEqual(0.3);
  expect(thousand.accountItemBytes - ten.accountItemBytes).toBeLessThan(20);
}, 600_000);
