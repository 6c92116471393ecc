import { App, RemovalPolicy } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { MAX_BODY_BYTES } from '../../lambda/app';
import { ItapiStack } from '../../lib';
import { functionUrlEvent, restApiEvent } from '../support/awslambda-standin';
import { cdkJsonContext, logicalIdByPath, resourcesOfType, type SynthesizedItapi } from './synth-itapi';

/**
 * Issue 20, item 7 (operations) and the daily catalog check of item 6, on the synthesized template
 * (no bundling: these assertions read only the resources).
 */

type Props = Record<string, any>;

function synth(props: ConstructorParameters<typeof ItapiStack>[2] = {}): { json: SynthesizedItapi['json']; template: Template } {
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], 'aws:cdk:enable-path-metadata': true } });
  const stack = new ItapiStack(app, 'Ops', props);
  const template = Template.fromStack(stack);
  return { json: template.toJSON() as SynthesizedItapi['json'], template };
}

let s: ReturnType<typeof synth>;
beforeAll(() => {
  s = synth();
});

const sweeperFunctionId = () => logicalIdByPath(s.json, 'Gateway/Sweeper/Handler/Function/Resource');

describe('the sweeper function', () => {
  it('is not retried by Lambda after a failed scheduled sweep (the next minute’s sweep is the retry)', () => {
    const configs = resourcesOfType(s.json, 'AWS::Lambda::EventInvokeConfig').map(([, r]) => r.Properties as Props);
    const sweeper = configs.filter((c) => JSON.stringify(c.FunctionName).includes(sweeperFunctionId()));
    expect(sweeper).toEqual([expect.objectContaining({ MaximumRetryAttempts: 0, Qualifier: '$LATEST' })]);
  });

  it('checks the catalog daily: a second rule invokes it with {"itapi": "catalog-check"}', () => {
    const rules = resourcesOfType(s.json, 'AWS::Events::Rule').map(([, r]) => r.Properties as Props);
    const check = rules.find((r) => r.ScheduleExpression === 'rate(1 day)');
    expect(check).toBeDefined();
    expect(check!.Targets).toEqual([expect.objectContaining({ Input: JSON.stringify({ itapi: 'catalog-check' }), RetryPolicy: { MaximumRetryAttempts: 0 } })]);
    expect(JSON.stringify(check!.Targets[0].Arn)).toContain(sweeperFunctionId());
    expect(rules.find((r) => r.ScheduleExpression === 'rate(1 minute)')).toBeDefined();
  });

  it('alarms when a route is within 30 days of its shutdown (RoutesNearShutdown, daily maximum)', () => {
    const alarm = resourcesOfType(s.json, 'AWS::CloudWatch::Alarm')
      .map(([, r]) => r.Properties as Props)
      .find((p) => p.MetricName === 'RoutesNearShutdown');
    expect(alarm).toMatchObject({
      Namespace: 'Itapi',
      Dimensions: [{ Name: 'service', Value: 'itapi' }],
      Statistic: 'Maximum',
      Period: 86_400,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  it('reads the catalog the chat function serves, when one is given', () => {
    const withCatalog = synth({
      catalog: { models: { m: { owned_by: 't', pricing: { input_per_mtok: 1, output_per_mtok: 1 }, context_window: 10, max_output_tokens: 5, routes: [{ provider: 'mock', model: 'm', shutdown_date: '2027-01-01' }] } } },
    });
    const fn = withCatalog.json.Resources[logicalIdByPath(withCatalog.json, 'Gateway/Sweeper/Handler/Function/Resource')].Properties as Props;
    expect(fn.Environment.Variables.ITAPI_MODELS).toBe('/var/task/catalog.json');
    expect((s.json.Resources[sweeperFunctionId()].Properties as Props).Environment.Variables.ITAPI_MODELS).toBeUndefined();
  });
});

describe('a catalog’s shutdown dates at synthesis', () => {
  const withRoute = (route: Record<string, string>) => () =>
    synth({ catalog: { models: { m: { owned_by: 't', pricing: { input_per_mtok: 1, output_per_mtok: 1 }, context_window: 10, max_output_tokens: 5, routes: [{ provider: 'mock', model: 'm', ...route }] } } } });

  it('refuses a successor the catalog does not have and a date that is not one, before anything deploys', () => {
    expect(withRoute({ shutdown_date: '2027-01-14', successor: 'nope' })).toThrow('models["m"].routes[0].successor "nope" is not another model of the catalog');
    expect(withRoute({ shutdown_date: '14.01.2027' })).toThrow('is not a date YYYY-MM-DD');
  });
});

describe('outputs', () => {
  it('name the chat function’s log group (its name is generated, not /aws/lambda/…)', () => {
    const outputs = (s.json as { Outputs?: Record<string, Props> }).Outputs!;
    expect(outputs.ChatLogGroupName.Value).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Chat/Handler/Logs/Resource') });
  });
});

describe('cdk destroy', () => {
  it('keeps the settlement queue and its dead-letter queue, as it keeps the tables', () => {
    const queues = resourcesOfType(s.json, 'AWS::SQS::Queue').filter(([, q]) => String(q.Metadata?.['aws:cdk:path']).includes('/Sweeper/'));
    expect(queues).toHaveLength(2);
    for (const [, q] of queues) expect({ DeletionPolicy: q.DeletionPolicy, UpdateReplacePolicy: q.UpdateReplacePolicy }).toEqual({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    for (const [, t] of resourcesOfType(s.json, 'AWS::DynamoDB::GlobalTable')) expect(t.DeletionPolicy).toBe('Retain');
  });

  it('deletes both with the tables when the stack asks for RemovalPolicy.DESTROY', () => {
    const destroy = synth({ removalPolicy: RemovalPolicy.DESTROY, deletionProtection: false });
    const sweeperQueues = resourcesOfType(destroy.json, 'AWS::SQS::Queue').filter(([, q]) => String(q.Metadata?.['aws:cdk:path']).includes('/Sweeper/'));
    expect(sweeperQueues).toHaveLength(2);
    for (const [, q] of sweeperQueues) expect(q.DeletionPolicy).toBe('Delete');
  });
});

describe('DynamoDB throttle alarms', () => {
  const alarm = (role: string) =>
    resourcesOfType(s.json, 'AWS::CloudWatch::Alarm')
      .map(([, r]) => r.Properties as Props)
      .find((p) => JSON.stringify(p.AlarmName).includes(`DynamoDbThrottles-${role}`))!;
  const stats = (p: Props) => (p.Metrics as Props[]).filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric as Props);

  it('count the throttle events of every global secondary index besides the table’s own', () => {
    const keys = alarm('keys');
    const indexes = stats(keys)
      .map((m) => (m.Dimensions as Props[]).find((d) => d.Name === 'GlobalSecondaryIndexName')?.Value)
      .filter(Boolean)
      .sort();
    expect(indexes).toEqual(['by-account', 'by-account', 'by-key-id', 'by-key-id']);
    expect(stats(keys)).toHaveLength(6);
    const expression = (keys.Metrics as Props[]).find((m) => m.Expression)!.Expression as string;
    for (const m of keys.Metrics as Props[]) if (m.MetricStat) expect(expression).toContain(`FILL(${m.Id}, 0)`);
    expect(stats(alarm('sessions'))).toHaveLength(4);
    expect(stats(alarm('accounts'))).toHaveLength(2);
  });
});

describe('IAM: Scan and BatchWriteItem only where the runtime uses them', () => {
  const statements = (rolePrefix: string): Props[] =>
    resourcesOfType(s.json, 'AWS::IAM::Policy')
      .filter(([id]) => id.startsWith(rolePrefix))
      .flatMap(([, p]) => (p.Properties as Props).PolicyDocument.Statement as Props[]);
  const tablesWith = (rolePrefix: string, action: string): string[] =>
    statements(rolePrefix)
      .filter((st) => [st.Action].flat().includes(action))
      .flatMap((st) => [st.Resource].flat())
      .map((r) => JSON.stringify(r))
      .map((r) => ['Keys', 'Tiers', 'Accounts', 'Usage', 'Holds', 'Sessions', 'Responses'].find((t) => r.includes(logicalIdByPath(s.json, `Gateway/Tables/${t}/Resource`)))!)
      .filter(Boolean)
      .sort();

  it('scans tiers (the tier cache) everywhere, holds only in the sweeper, and nothing else', () => {
    expect(tablesWith('GatewayChatHandlerRole', 'dynamodb:Scan')).toEqual(['Tiers']);
    expect(tablesWith('GatewayAdminHandlerRole', 'dynamodb:Scan')).toEqual(['Tiers']);
    expect(tablesWith('GatewaySweeperHandlerRole', 'dynamodb:Scan')).toEqual(['Holds', 'Tiers']);
  });

  it('batch-writes only the stored responses, from the chat function; BatchGetItem nowhere', () => {
    expect(tablesWith('GatewayChatHandlerRole', 'dynamodb:BatchWriteItem')).toEqual(['Responses']);
    expect(tablesWith('GatewayAdminHandlerRole', 'dynamodb:BatchWriteItem')).toEqual([]);
    expect(tablesWith('GatewaySweeperHandlerRole', 'dynamodb:BatchWriteItem')).toEqual([]);
    expect(JSON.stringify(s.json)).not.toContain('dynamodb:BatchGetItem');
  });
});

describe('the body limit', () => {
  /** Lambda's limit on a synchronous invocation's event (request payload). */
  const LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024;
  /** API Gateway's limit on a REST request's headers, which a REST event carries twice. */
  const headers = { authorization: `Bearer it_${'x'.repeat(40)}`, 'content-type': 'application/json', 'x-filler': 'h'.repeat(10_000) };
  const bodyOf = (size: number, text: (n: number) => string) => {
    const shell = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: '' }] });
    return shell.replace('"content":""', `"content":${JSON.stringify(text(size - shell.length - 2))}`).slice(0, size);
  };

  it.each([
    ['plain text', (n: number) => 'a'.repeat(n)],
    ['a base64 image', (n: number) => 'QUJD'.repeat(Math.ceil(n / 4)).slice(0, n)],
    // Quoted text: each `"` is `\"` in the body, and both bytes are escaped again in the event (a fifth of the bytes).
    ['text with quotes, a fifth of its bytes escaped again in the event', (n: number) => 'ab"cdefgh'.repeat(Math.ceil(n / 9)).slice(0, Math.floor(n * 0.9))],
  ])('a body of exactly the limit (%s) fits a REST and a Function URL event under Lambda’s 6 MB', (_name, text) => {
    const body = bodyOf(MAX_BODY_BYTES, text);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_BODY_BYTES);
    expect(Buffer.byteLength(body)).toBeGreaterThan(MAX_BODY_BYTES * 0.95);
    for (const event of [restApiEvent('POST', '/v1/chat/completions', headers, body), functionUrlEvent('POST', '/v1/chat/completions', headers, body)]) {
      expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThan(LAMBDA_PAYLOAD_BYTES);
    }
  });

  it('the old 6 MiB limit did not: such a body never reached the function; nor does a body mostly made of quotes', () => {
    const body = bodyOf(6 * 1024 * 1024 - 1024, (n) => 'a'.repeat(n));
    expect(Buffer.byteLength(JSON.stringify(restApiEvent('POST', '/v1/chat/completions', headers, body)))).toBeGreaterThan(LAMBDA_PAYLOAD_BYTES);
    // The documented edge (docs/DEPLOY.md): more than about half the bytes escaped, and API Gateway answers 413 itself.
    const quoted = bodyOf(MAX_BODY_BYTES, (n) => '{"k":"v"}'.repeat(n).slice(0, Math.floor(n / 1.5)));
    expect(Buffer.byteLength(JSON.stringify(restApiEvent('POST', '/v1/chat/completions', headers, quoted)))).toBeGreaterThan(LAMBDA_PAYLOAD_BYTES);
  });
});
