import { handle, type LambdaEvent } from 'hono/aws-lambda';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { createAdminLambdaApp } from '../../lambda/entry/admin-lambda';
import { loadCatalog } from '../../lambda/catalog';
import { createAdminHarness, type AdminHarness } from '../support/admin-harness';

let h: AdminHarness;
const lines: string[] = [];

beforeAll(async () => {
  h = await createAdminHarness();
});
afterAll(async () => {
  await h.close();
});

function restEvent(method: string, path: string, body?: unknown, query?: Record<string, string>): LambdaEvent {
  const event: APIGatewayProxyEvent = {
    resource: '/admin/{proxy+}',
    path,
    httpMethod: method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    multiValueHeaders: {},
    queryStringParameters: query ?? null,
    multiValueQueryStringParameters: query ? Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])) : null,
    pathParameters: { proxy: path.replace(/^\/admin\//, '') },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      httpMethod: method,
      path: `/prod${path}`,
      stage: 'prod',
      requestId: 'req-1',
      requestTimeEpoch: Date.now(),
      resourceId: 'r1',
      resourcePath: '/admin/{proxy+}',
      protocol: 'HTTP/1.1',
      authorizer: null,
      identity: { userArn: 'arn:aws:iam::123456789012:user/operator', sourceIp: '127.0.0.1' },
    } as unknown as APIGatewayProxyEvent['requestContext'],
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
  };
  return event as unknown as LambdaEvent;
}

test('REST v1 proxy events reach the admin routes under /admin and are audited without secrets', async () => {
  const app = createAdminLambdaApp({
    ...h.stores,
    tierCache: h.tierCache,
    auth: h.auth,
    catalog: loadCatalog({}),
    log: { info: (event, fields) => lines.push(JSON.stringify({ event, ...fields })), error: (event, fields) => lines.push(JSON.stringify({ event, ...fields })) },
  });
  const handler = handle(app);

  const created = await handler(restEvent('POST', '/admin/accounts', { id: 'lambda-acct', tier: 'free', credits_usd: 2 }));
  expect(created.statusCode).toBe(201);
  expect(JSON.parse(created.body)).toMatchObject({ id: 'lambda-acct', balance_micro_usd: 2_000_000 });

  const key = await handler(restEvent('POST', '/admin/keys', { account_id: 'lambda-acct' }));
  expect(key.statusCode).toBe(201);
  const secret = JSON.parse(key.body).key as string;
  expect(secret).toMatch(/^it_/);

  const usage = await handler(restEvent('GET', '/admin/accounts/lambda-acct/usage', undefined, { from: '0' }));
  expect(usage.statusCode).toBe(200);
  expect(JSON.parse(usage.body).totals.top_up_micro_usd).toBe(2_000_000);

  const missing = await handler(restEvent('GET', '/admin/accounts/none'));
  expect(missing.statusCode).toBe(404);
  expect(JSON.parse(missing.body).error.code).toBe('not_found');

  const outside = await handler(restEvent('GET', '/v1/models'));
  expect(outside.statusCode).toBe(404);
  expect(JSON.parse(outside.body).error.type).toBe('invalid_request_error');

  expect(lines.length).toBe(5);
  expect(JSON.parse(lines[0])).toMatchObject({ event: 'admin_request', method: 'POST', path: '/admin/accounts', status: 201, caller: 'arn:aws:iam::123456789012:user/operator' });
  expect(lines.join('\n')).not.toContain(secret);
});
