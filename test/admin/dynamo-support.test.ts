import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { createTestTables, deleteTestTables } from '../support/dynamo';

test('createTestTables makes four active tables with unique names', async () => {
  const a = await createTestTables();
  const b = await createTestTables();
  expect(new Set([...Object.values(a.tables), ...Object.values(b.tables)]).size).toBe(8);
  const listed = await a.client.send(new ListTablesCommand({}));
  for (const name of Object.values(a.tables)) expect(listed.TableNames).toContain(name);
  await deleteTestTables(a.client, a.tables);
  await deleteTestTables(b.client, b.tables);
});
