import { tableDefinitions } from '../../lambda/store/tables';
import { createTestTables, deleteTestTables } from '../support/dynamo';

test('createTestTables makes every table of tableDefinitions, active, with unique names', async () => {
  const a = await createTestTables();
  const b = await createTestTables();
  const count = tableDefinitions(a.tables).length;
  expect(Object.keys(a.tables)).toHaveLength(count);
  expect(new Set([...Object.values(a.tables), ...Object.values(b.tables)]).size).toBe(2 * count);
  // ListTables answers 100 names a page, and other test files create tables in the same DynamoDB Local.
  const listed: string[] = [];
  let start: string | undefined;
  do {
    const page = await a.client.call('ListTables', { ExclusiveStartTableName: start });
    listed.push(...(page.TableNames ?? []));
    start = page.LastEvaluatedTableName;
  } while (start);
  for (const name of Object.values(a.tables)) expect(listed).toContain(name);
  await deleteTestTables(a.client, a.tables);
  await deleteTestTables(b.client, b.tables);
});
