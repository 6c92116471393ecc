import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { ADMIN_FUNCTION_PATH, CHAT_FUNCTION_PATH, findFunctionBundleDir } from './cdk-bundle';
import { logicalIdByPath, resourcesOfType, synthesizeItapi, type SynthesizedItapi } from './synth-itapi';

// One synthesis (with esbuild bundling and cdk-nag) for the whole file: the app as bin/itapi.ts builds it.
let s: SynthesizedItapi;
beforeAll(() => {
  s = synthesizeItapi();
});

type Props = Record<string, any>;

function props(logicalId: string): Props {
  return s.json.Resources[logicalId].Properties as Props;
}

function statementsOf(policyLogicalIdPrefix: string): Props[] {
  const policies = resourcesOfType(s.json, 'AWS::IAM::Policy').filter(([id]) => id.startsWith(policyLogicalIdPrefix));
  expect(policies).toHaveLength(1);
  return (policies[0][1].Properties as Props).PolicyDocument.Statement as Props[];
}

describe('chat function', () => {
  it('runs Node.js 24 on arm64 with explicit memory and a 15-minute timeout', () => {
    const fn = props(logicalIdByPath(s.json, CHAT_FUNCTION_PATH));
    expect(fn).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], MemorySize: 512, Timeout: 900, Handler: 'index.handler' });
  });

  it('gets the runtime environment contract, with no catalog variable when no catalog is given', () => {
    const env = props(logicalIdByPath(s.json, CHAT_FUNCTION_PATH)).Environment.Variables as Props;
    expect(Object.keys(env).sort()).toEqual(
      [
        'ITAPI_ACCOUNTS_TABLE',
        'ITAPI_ALERT_QUEUE_URL',
        'ITAPI_HOLDS_TABLE',
        'ITAPI_CONSOLE_MODULE',
        'ITAPI_CONSOLE_SCRIPT',
        'ITAPI_KEYS_TABLE',
        'ITAPI_MAX_REQUEST_S',
        'ITAPI_METRICS_NAMESPACE',
        'ITAPI_PROVIDER_SECRET_ID',
        'ITAPI_RESPONSES_TABLE',
        'ITAPI_ROLLUPS_TABLE',
        'ITAPI_RESPONSES_TTL_DAYS',
        'ITAPI_SETTLEMENT_QUEUE_URL',
        'ITAPI_SESSIONS_TABLE',
        'ITAPI_TIERS_TABLE',
        'ITAPI_TOKENIZER_MODULE',
        'ITAPI_USAGE_TABLE',
      ].sort(),
    );
    // Requests end 30 s before the function's 15 minutes, so their settlement is written in time.
    expect(env.ITAPI_MAX_REQUEST_S).toBe('870');
    expect(env.ITAPI_HOLDS_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Holds/Resource') });
    expect(env.ITAPI_SETTLEMENT_QUEUE_URL).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Sweeper/Settlements/Resource') });
    // No --enable-source-maps: Node would parse index.js.map at every cold start (docs/BENCHMARKS.md, "Cold start").
    expect(env.NODE_OPTIONS).toBeUndefined();
    expect(env.ITAPI_TOKENIZER_MODULE).toBe('/var/task/tokenizer.js');
    expect(env.ITAPI_CONSOLE_MODULE).toBe('/var/task/console.js');
    expect(env.ITAPI_CONSOLE_SCRIPT).toBe('/var/task/console-client.js');
    expect(env.ITAPI_SESSIONS_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Sessions/Resource') });
    expect(env.ITAPI_METRICS_NAMESPACE).toBe('Itapi');
    expect(env.ITAPI_KEYS_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Keys/Resource') });
    expect(env.ITAPI_USAGE_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Usage/Resource') });
    expect(env.ITAPI_PROVIDER_SECRET_ID).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/ProviderKeys/Resource') });
    expect(env.ITAPI_RESPONSES_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Responses/Resource') });
    expect(env.ITAPI_RESPONSES_TTL_DAYS).toBe('30');
  });

  it('has a public Function URL in RESPONSE_STREAM mode, auth NONE, no CORS by default', () => {
    const urls = resourcesOfType(s.json, 'AWS::Lambda::Url');
    expect(urls).toHaveLength(1);
    const url = urls[0][1].Properties as Props;
    expect(url).toMatchObject({ InvokeMode: 'RESPONSE_STREAM', AuthType: 'NONE' });
    expect(url.Cors).toBeUndefined();
    expect(url.TargetFunctionArn).toEqual({ 'Fn::GetAtt': [logicalIdByPath(s.json, CHAT_FUNCTION_PATH), 'Arn'] });
  });

  it('ships a minified bundle with a source map and leaves the AWS SDK to the runtime', () => {
    const dir = findFunctionBundleDir(s.outdir, s.stack.artifactId, CHAT_FUNCTION_PATH);
    expect(existsSync(path.join(dir, 'index.js.map'))).toBe(true);
    // The console and Stripe's library are files of their own, loaded on the first /console request only.
    const consoleCode = readFileSync(path.join(dir, 'console.js'), 'utf8');
    expect(consoleCode).toContain('checkout.session.completed');
    expect(consoleCode).not.toContain('@aws-sdk/client-dynamodb');
    expect(readFileSync(path.join(dir, 'console-client.js'), 'utf8')).toContain('csrf-token');
    const indexCode = readFileSync(path.join(dir, 'index.js'), 'utf8');
    expect(indexCode).not.toContain('checkout.session.completed');
    expect(indexCode).not.toContain('api.stripe.com');
    expect(indexCode).not.toContain('content-security-policy');
    expect(existsSync(path.join(dir, 'catalog.json'))).toBe(false);
    const chatCode = readFileSync(path.join(dir, 'index.js'), 'utf8');
    expect(chatCode).toContain('streamifyResponse');
    // DynamoDB through the lean client (lambda/store/dynamo.ts): the SDK's DynamoDB client is not loaded at all.
    expect(chatCode).not.toContain('@aws-sdk/client-dynamodb');
    // The other AWS SDK clients stay the runtime's, loaded on first use only.
    expect(chatCode).toMatch(/import\("@aws-sdk\/client-bedrock-runtime"\)/);
    expect(chatCode).not.toMatch(/require\("@aws-sdk\//);
    expect(chatCode).not.toContain('node_modules/@aws-sdk/');
    const seedDir = findFunctionBundleDir(s.outdir, s.stack.artifactId, 'Gateway/TierSeed/Handler/Function/Resource');
    const seedCode = readFileSync(path.join(seedDir, 'index.js'), 'utf8');
    // The seeding handler writes through the lean client too: no AWS SDK client inlined.
    expect(seedCode).not.toContain('node_modules/@aws-sdk/');
    expect(seedCode).toContain('DynamoDB_20120810');
    expect(seedCode).not.toMatch(/\n\s{2,}\S/); // minified: no indented lines
  });
});

describe('REST API', () => {
  it('is regional', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::RestApi', { EndpointConfiguration: { Types: ['REGIONAL'] } });
  });

  it('streams /v1/{proxy+} to the chat function with a 15-minute integration timeout', () => {
    const chatFn = logicalIdByPath(s.json, CHAT_FUNCTION_PATH);
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'ANY',
      AuthorizationType: 'NONE',
      ResourceId: { Ref: logicalIdByPath(s.json, 'Gateway/Api/Api/Default/v1/{proxy+}/Resource') },
      Integration: {
        Type: 'AWS_PROXY',
        ResponseTransferMode: 'STREAM',
        TimeoutInMillis: 900_000,
        Uri: {
          'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('/2021-11-15/functions/$'), { 'Fn::GetAtt': [chatFn, 'Arn'] }, '/response-streaming-invocations'])],
        },
      },
    });
  });

  it('puts /admin/{proxy+} on the admin function behind IAM authorization', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'ANY',
      AuthorizationType: 'AWS_IAM',
      ResourceId: { Ref: logicalIdByPath(s.json, 'Gateway/Api/Api/Default/admin/{proxy+}/Resource') },
      Integration: {
        Type: 'AWS_PROXY',
        Uri: { 'Fn::Join': ['', Match.arrayWith([{ 'Fn::GetAtt': [logicalIdByPath(s.json, ADMIN_FUNCTION_PATH), 'Arn'] }])] },
      },
    });
    // Exactly these methods: nothing else is reachable, and nothing else is unauthenticated.
    expect(resourcesOfType(s.json, 'AWS::ApiGateway::Method').map(([, r]) => String(r.Metadata?.['aws:cdk:path']).replace('Itapi/Gateway/Api/Api/Default/', '')).sort()).toEqual(
      ['admin/{proxy+}/ANY/Resource', 'console/ANY/Resource', 'console/{proxy+}/ANY/Resource', 'v1/{proxy+}/ANY/Resource'].sort(),
    );
  });

  it('streams /console and /console/{proxy+} (pages, console API, Stripe webhook) to the chat function', () => {
    const chatFn = logicalIdByPath(s.json, CHAT_FUNCTION_PATH);
    for (const resource of ['Gateway/Api/Api/Default/console/Resource', 'Gateway/Api/Api/Default/console/{proxy+}/Resource']) {
      s.template.hasResourceProperties('AWS::ApiGateway::Method', {
        HttpMethod: 'ANY',
        AuthorizationType: 'NONE',
        ResourceId: { Ref: logicalIdByPath(s.json, resource) },
        Integration: { Type: 'AWS_PROXY', ResponseTransferMode: 'STREAM', Uri: { 'Fn::Join': ['', Match.arrayWith([{ 'Fn::GetAtt': [chatFn, 'Arn'] }])] } },
      });
    }
  });

  it('writes JSON access logs and throttles the stage', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'prod',
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"requestId":"\\$context.requestId"') },
      MethodSettings: Match.arrayWith([
        Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 }),
      ]),
    });
  });
});

describe('tables', () => {
  const roles = ['Keys', 'Tiers', 'Accounts', 'Usage', 'Holds', 'Sessions', 'Responses'];

  it.each(roles)('%s is on-demand with point-in-time recovery, deletion protection and retain', (role) => {
    const id = logicalIdByPath(s.json, `Gateway/Tables/${role}/Resource`);
    const table = s.json.Resources[id];
    expect(table.Type).toBe('AWS::DynamoDB::GlobalTable');
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.UpdateReplacePolicy).toBe('Retain');
    const p = table.Properties as Props;
    expect(p.BillingMode).toBe('PAY_PER_REQUEST');
    expect(p.Replicas).toHaveLength(1);
    expect(p.Replicas[0]).toMatchObject({
      DeletionProtectionEnabled: true,
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('keys the tables as the runtime expects (ARCHITECTURE §4)', () => {
    const keySchema = (role: string): Props => props(logicalIdByPath(s.json, `Gateway/Tables/${role}/Resource`)).KeySchema;
    expect(keySchema('Keys')).toEqual([{ AttributeName: 'key_hash', KeyType: 'HASH' }]);
    expect(keySchema('Tiers')).toEqual([{ AttributeName: 'tier_id', KeyType: 'HASH' }]);
    expect(keySchema('Accounts')).toEqual([{ AttributeName: 'account_id', KeyType: 'HASH' }]);
    expect(keySchema('Holds')).toEqual([{ AttributeName: 'request_id', KeyType: 'HASH' }]);
    expect(keySchema('Responses')).toEqual([
      { AttributeName: 'response_id', KeyType: 'HASH' },
      { AttributeName: 'part', KeyType: 'RANGE' },
    ]);
    expect(keySchema('Usage')).toEqual([
      { AttributeName: 'account_id', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    const gsis = props(logicalIdByPath(s.json, 'Gateway/Tables/Keys/Resource')).GlobalSecondaryIndexes as Props[];
    expect(gsis.map((g) => [g.IndexName, g.KeySchema.map((k: Props) => `${k.AttributeName}:${k.KeyType}`)])).toEqual([
      ['by-account', ['account_id:HASH', 'key_id:RANGE']],
      ['by-key-id', ['key_id:HASH']],
    ]);
    expect(keySchema('Sessions')).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    const sessionGsis = props(logicalIdByPath(s.json, 'Gateway/Tables/Sessions/Resource')).GlobalSecondaryIndexes as Props[];
    expect(sessionGsis.map((g) => [g.IndexName, g.KeySchema.map((k: Props) => `${k.AttributeName}:${k.KeyType}`), g.Projection.ProjectionType])).toEqual([
      ['by-account', ['account_id:HASH', 'id:RANGE'], 'KEYS_ONLY'],
    ]);
  });

  it('expires usage, hold and stored-response items and console links and sessions by TTL on expires_at, and nothing else', () => {
    const ttl = (role: string): unknown => props(logicalIdByPath(s.json, `Gateway/Tables/${role}/Resource`)).TimeToLiveSpecification;
    expect(ttl('Usage')).toEqual({ AttributeName: 'expires_at', Enabled: true });
    expect(ttl('Sessions')).toEqual({ AttributeName: 'expires_at', Enabled: true });
    expect(ttl('Holds')).toEqual({ AttributeName: 'expires_at', Enabled: true });
    expect(ttl('Responses')).toEqual({ AttributeName: 'expires_at', Enabled: true });
    for (const role of ['Keys', 'Tiers', 'Accounts']) expect(ttl(role)).toBeUndefined();
  });

  it('streams the holds table’s removals to the sweeper, filtered to what its TTL removed', () => {
    expect(props(logicalIdByPath(s.json, 'Gateway/Tables/Holds/Resource')).StreamSpecification).toEqual({ StreamViewType: 'OLD_IMAGE' });
    const mappings = resourcesOfType(s.json, 'AWS::Lambda::EventSourceMapping').map(([, r]) => r.Properties as Props);
    const stream = mappings.find((m) => JSON.stringify(m.EventSourceArn).includes('StreamArn'))!;
    expect(stream.FunctionName).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Sweeper/Handler/Function/Resource') });
    expect(JSON.parse(stream.FilterCriteria.Filters[0].Pattern)).toEqual({
      eventName: ['REMOVE'],
      userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] },
    });
  });

  it('keeps the dead-letter queue to replayable settlements: failed stream batches go to a queue of their own (issue 17)', () => {
    const mappings = resourcesOfType(s.json, 'AWS::Lambda::EventSourceMapping').map(([, r]) => r.Properties as Props);
    const stream = mappings.find((m) => JSON.stringify(m.EventSourceArn).includes('StreamArn'))!;
    const failures = logicalIdByPath(s.json, 'Gateway/Sweeper/HoldStreamFailures/Resource');
    const deadLetters = logicalIdByPath(s.json, 'Gateway/Sweeper/SettlementDeadLetters/Resource');
    expect(stream.DestinationConfig).toEqual({ OnFailure: { Destination: { 'Fn::GetAtt': [failures, 'Arn'] } } });
    // The settlement queue's redrive is the only way into the dead-letter queue.
    const redriving = resourcesOfType(s.json, 'AWS::SQS::Queue').filter(([, r]) => JSON.stringify((r.Properties as Props).RedrivePolicy ?? {}).includes(deadLetters));
    expect(redriving.map(([id]) => id)).toEqual([logicalIdByPath(s.json, 'Gateway/Sweeper/Settlements/Resource')]);
    expect(JSON.stringify(mappings)).not.toContain(deadLetters);
  });

  it('reconciles the holds table against the accounts once a day', () => {
    const rule = props(logicalIdByPath(s.json, 'Gateway/Sweeper/Reconciliation/Resource'));
    expect(rule.ScheduleExpression).toBe('rate(1 day)');
    expect(rule.Targets).toEqual([
      expect.objectContaining({ Arn: { 'Fn::GetAtt': [logicalIdByPath(s.json, 'Gateway/Sweeper/Handler/Function/Resource'), 'Arn'] }, Input: JSON.stringify({ action: 'reconcile' }) }),
    ]);
  });
});

describe('provider secret', () => {
  it('is created once as a JSON object placeholder, so later deploys never overwrite keys', () => {
    const secret = props(logicalIdByPath(s.json, 'Gateway/ProviderKeys/Resource'));
    expect(secret.SecretString).toBeUndefined();
    expect(JSON.parse(secret.GenerateSecretString.SecretStringTemplate)).toEqual({});
    expect(secret.GenerateSecretString.GenerateStringKey).toBe('_placeholder');
  });
});

describe('IAM', () => {
  const ownResources = (): Set<string> =>
    new Set(
      ['Keys', 'Tiers', 'Accounts', 'Usage', 'Holds', 'Sessions', 'Responses', 'Rollups'].map((r) => logicalIdByPath(s.json, `Gateway/Tables/${r}/Resource`)),
    );

  function referencedLogicalIds(value: unknown): string[] {
    const out: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        const o = v as Props;
        if (typeof o.Ref === 'string') out.push(o.Ref);
        if (Array.isArray(o['Fn::GetAtt'])) out.push(o['Fn::GetAtt'][0]);
        Object.values(o).forEach(walk);
      }
    };
    walk(value);
    return out;
  }

  it('uses no wildcard actions anywhere', () => {
    for (const [, policy] of resourcesOfType(s.json, 'AWS::IAM::Policy')) {
      for (const st of (policy.Properties as Props).PolicyDocument.Statement as Props[]) {
        for (const action of [st.Action].flat()) expect(action).not.toMatch(/\*/);
      }
    }
  });

  it('scopes the chat function to these tables, this secret and its own log group', () => {
    const statements = statementsOf('GatewayChatHandlerRole');
    const allowed = new Set([
      ...ownResources(),
      logicalIdByPath(s.json, 'Gateway/ProviderKeys/Resource'),
      logicalIdByPath(s.json, 'Gateway/Chat/Handler/Logs/Resource'),
      logicalIdByPath(s.json, 'Gateway/Sweeper/Settlements/Resource'),
      logicalIdByPath(s.json, 'Gateway/Sweeper/Alerts/Resource'),
    ]);
    for (const st of statements) {
      expect(st.Effect).toBe('Allow');
      for (const resource of [st.Resource].flat()) {
        expect(typeof resource).not.toBe('string'); // never a literal ARN or '*'
        const ids = referencedLogicalIds(resource);
        expect(ids.length).toBeGreaterThan(0);
        for (const id of ids) expect(allowed).toContain(id);
        const joined = JSON.stringify(resource);
        if (joined.includes('/index/')) expect(joined).toMatch(/\/index\/(by-account|by-key-id)"/);
      }
    }
    const secretStatement = statements.find((st) => JSON.stringify(st.Resource).includes(logicalIdByPath(s.json, 'Gateway/ProviderKeys/Resource')));
    expect([secretStatement?.Action].flat().sort()).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
    const tiersId = logicalIdByPath(s.json, 'Gateway/Tables/Tiers/Resource');
    const tiersWrites = statements.filter((st) => referencedLogicalIds(st.Resource).includes(tiersId) && [st.Action].flat().some((a: string) => /Put|Update|Delete|Write/.test(a)));
    expect(tiersWrites).toEqual([]); // the chat path only reads tiers
    expect(JSON.stringify(statements)).not.toMatch(/bedrock:/); // no Bedrock routes, no Bedrock grant
  });

  it('gives the admin function the console URL on the Function URL for sign-in links', () => {
    const env = props(logicalIdByPath(s.json, ADMIN_FUNCTION_PATH)).Environment.Variables as Props;
    expect(JSON.stringify(env.ITAPI_CONSOLE_URL)).toMatch(/"FunctionUrl"\]\},"console\/"\]/);
    expect(env.ITAPI_SESSIONS_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Sessions/Resource') });
  });

  it('scopes the admin function to these tables (never the stored responses) and its own log group', () => {
    const responses = logicalIdByPath(s.json, 'Gateway/Tables/Responses/Resource');
    const allowed = new Set([...ownResources(), logicalIdByPath(s.json, 'Gateway/Admin/Handler/Logs/Resource')]);
    allowed.delete(responses);
    for (const st of statementsOf('GatewayAdminHandlerRole')) {
      for (const resource of [st.Resource].flat()) {
        expect(typeof resource).not.toBe('string');
        for (const id of referencedLogicalIds(resource)) expect(allowed).toContain(id);
      }
    }
  });

  it('keeps the sweeper to the money tables: never the console sessions or the stored responses', () => {
    const referenced = statementsOf('GatewaySweeperHandlerRole').flatMap((st) => [st.Resource].flat().flatMap(referencedLogicalIds));
    for (const table of ['Holds', 'Accounts', 'Usage']) expect(referenced).toContain(logicalIdByPath(s.json, `Gateway/Tables/${table}/Resource`));
    for (const table of ['Sessions', 'Responses']) expect(referenced).not.toContain(logicalIdByPath(s.json, `Gateway/Tables/${table}/Resource`));
  });

  it('attaches no AWS managed policies to the gateway functions', () => {
    for (const fn of ['Chat', 'Admin', 'TierSeed']) {
      const role = props(logicalIdByPath(s.json, `Gateway/${fn}/Handler/Role/Resource`));
      expect(role.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe('tier seeding', () => {
  it('seeds the default tiers into the tiers table with a custom resource', () => {
    const seeds = resourcesOfType(s.json, 'Custom::ItapiTierSeed');
    expect(seeds).toHaveLength(1);
    const p = seeds[0][1].Properties as Props;
    expect(p.TableName).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Tiers/Resource') });
    const tiers = JSON.parse(p.TiersJson) as Props[];
    expect(tiers.map((t) => [t.id, t.rpm, t.tpm])).toEqual([
      ['free', 10, 20_000],
      ['starter', 60, 100_000],
      ['pro', 300, 500_000],
      ['enterprise', 0, 0],
    ]);
  });

  it('lets the seeding function only put items into the tiers table', () => {
    const statements = statementsOf('GatewayTierSeedHandlerRole');
    const dynamo = statements.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('dynamodb:')));
    expect(dynamo).toEqual([
      { Action: 'dynamodb:PutItem', Effect: 'Allow', Resource: { 'Fn::GetAtt': [logicalIdByPath(s.json, 'Gateway/Tables/Tiers/Resource'), 'Arn'] } },
    ]);
  });
});

describe('usage roll-ups consumer', () => {
  const fnId = () => logicalIdByPath(s.json, 'Gateway/UsageRollups/Handler/Function/Resource');

  it('reads the usage table stream (new images), inserts of request items only, with partial batch failures, bisection and an on-failure queue', () => {
    const usage = props(logicalIdByPath(s.json, 'Gateway/Tables/Usage/Resource'));
    expect(usage.StreamSpecification).toEqual({ StreamViewType: 'NEW_IMAGE' });
    const mappings = resourcesOfType(s.json, 'AWS::Lambda::EventSourceMapping').filter(([, r]) => (r.Properties as Props).FunctionName?.Ref === fnId());
    expect(mappings).toHaveLength(1);
    const m = mappings[0][1].Properties as Props;
    expect(m.EventSourceArn).toEqual({ 'Fn::GetAtt': [logicalIdByPath(s.json, 'Gateway/Tables/Usage/Resource'), 'StreamArn'] });
    expect(m).toMatchObject({ FunctionResponseTypes: ['ReportBatchItemFailures'], BisectBatchOnFunctionError: true, MaximumRetryAttempts: 20, StartingPosition: 'TRIM_HORIZON' });
    expect(JSON.parse(m.FilterCriteria.Filters[0].Pattern)).toEqual({ eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: ['request'] } } } });
    expect(m.DestinationConfig.OnFailure.Destination).toEqual({ 'Fn::GetAtt': [logicalIdByPath(s.json, 'Gateway/UsageRollups/RollupFailures/Resource'), 'Arn'] });
  });

  it('may only update the usage and roll-ups tables (and read the stream)', () => {
    const fn = props(fnId());
    expect(fn).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'] });
    const role = fn.Role['Fn::GetAtt'][0];
    const policies = resourcesOfType(s.json, 'AWS::IAM::Policy').filter(([, r]) => ((r.Properties as Props).Roles as Props[]).some((x) => x.Ref === role));
    const statements = policies.flatMap(([, r]) => (r.Properties as Props).PolicyDocument.Statement as Props[]);
    const dataActions = statements.flatMap((st) => [st.Action].flat()).filter((a: string) => /^dynamodb:(Put|Update|Delete|Get|Query|Scan|Batch|Transact)/.test(a));
    // GetRecords and GetShardIterator are the stream's (the event source mapping's own grant).
    expect([...new Set(dataActions)].sort()).toEqual(['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:UpdateItem']);
    const updateResources = statements.filter((st) => [st.Action].flat().includes('dynamodb:UpdateItem')).flatMap((st) => [st.Resource].flat());
    expect(updateResources.map((r: Props) => r['Fn::GetAtt']?.[0]).sort()).toEqual(
      [logicalIdByPath(s.json, 'Gateway/Tables/Rollups/Resource'), logicalIdByPath(s.json, 'Gateway/Tables/Usage/Resource')].sort(),
    );
  });

  it('gives the chat function (console) read access to the roll-ups', () => {
    const env = props(logicalIdByPath(s.json, CHAT_FUNCTION_PATH)).Environment.Variables;
    expect(env.ITAPI_ROLLUPS_TABLE).toEqual({ Ref: logicalIdByPath(s.json, 'Gateway/Tables/Rollups/Resource') });
  });
});

describe('alarms and dashboard', () => {
  const alarms = (): Array<[string, Props]> =>
    resourcesOfType(s.json, 'AWS::CloudWatch::Alarm').map(([id, r]) => [String(r.Metadata?.['aws:cdk:path']).split('/').at(-2) ?? id, r.Properties as Props]);

  it('reads as many metrics as docs/COST.md prices (32 alarms, 49 metrics at $0.10 each)', () => {
    const metrics = alarms().reduce((n, [, p]) => n + (p.Metrics ? (p.Metrics as Props[]).filter((m) => m.MetricStat).length : 1), 0);
    expect({ alarms: alarms().length, metrics }).toEqual({ alarms: 32, metrics: 49 });
    const cost = readFileSync(path.join(__dirname, '../../docs/COST.md'), 'utf8');
    expect(cost).toContain('32 alarms reading 49 metrics');
    expect(cost).toContain('CloudWatch alarms (49 alarm metrics) | $4.90');
  });

  it('has every promised alarm', () => {
    expect(alarms().map(([name]) => name).sort()).toEqual(
      [
        'AdminFunctionErrors',
        'AdminFunctionThrottles',
        'ApiGateway5xxRate',
        'ChatFunctionDurationP99',
        'ChatFunctionErrors',
        'ChatFunctionThrottles',
        'AbandonedHolds',
        'CatalogRoutesNearShutdown',
        'DynamoDbThrottles-accounts',
        'DynamoDbThrottles-holds',
        'DynamoDbThrottles-keys',
        'DynamoDbThrottles-sessions',
        'DynamoDbThrottles-responses',
        'DynamoDbThrottles-rollups',
        'DynamoDbThrottles-tiers',
        'DynamoDbThrottles-usage',
        'Gateway5xxRate',
        'HotAccount',
        'HoldsMismatch',
        'HoldStreamFailures',
        'LateSettlements',
        'RollupDeadLetters',
        'RollupErrors',
        'RollupIteratorAge',
        'SettlementDeadLetters',
        'SettlementQueueAge',
        'StripeEventsIgnored',
        'SweeperErrors',
        'UnchargedUsage',
        'UndeliveredAlerts',
        'UpstreamErrorRate-anthropic',
        'UpstreamErrorRate-openai-compatible',
      ].sort(),
    );
  });

  it('notifies the SNS topic on alarm and on recovery', () => {
    const topic = logicalIdByPath(s.json, 'Gateway/Monitoring/AlarmTopic/Resource');
    for (const [name, alarm] of alarms()) {
      expect({ name, actions: alarm.AlarmActions }).toEqual({ name, actions: [{ Ref: topic }] });
      expect(alarm.OKActions).toEqual([{ Ref: topic }]);
    }
  });

  it('watches p99 duration against 80% of the 15-minute timeout', () => {
    const [, p99] = alarms().find(([name]) => name === 'ChatFunctionDurationP99')!;
    expect(p99).toMatchObject({ MetricName: 'Duration', ExtendedStatistic: 'p99', Threshold: 720_000 });
    expect(p99.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: logicalIdByPath(s.json, CHAT_FUNCTION_PATH) } }]);
  });

  it('computes the gateway 5xx rate and upstream error rates with metric math on the EMF metrics', () => {
    const byName = new Map(alarms());
    const gateway = byName.get('Gateway5xxRate')!;
    const metricsOf = (alarm: Props): Props[] => alarm.Metrics.filter((m: Props) => m.MetricStat).map((m: Props) => m.MetricStat.Metric);
    expect(gateway.Metrics.find((m: Props) => m.Expression)?.Expression).toMatch(/100 \* FILL\(err, 0\) \/ req/);
    expect(metricsOf(gateway)).toEqual(
      expect.arrayContaining([
        { Namespace: 'Itapi', MetricName: 'Requests', Dimensions: [{ Name: 'service', Value: 'itapi' }] },
        { Namespace: 'Itapi', MetricName: 'Http5xx', Dimensions: [{ Name: 'service', Value: 'itapi' }] },
      ]),
    );
    const anthropic = byName.get('UpstreamErrorRate-anthropic')!;
    expect(metricsOf(anthropic).map((m) => [m.MetricName, m.Dimensions])).toEqual(
      expect.arrayContaining([
        ['UpstreamRequests', [{ Name: 'Provider', Value: 'anthropic' }, { Name: 'service', Value: 'itapi' }]],
        ['UpstreamErrors', [{ Name: 'Provider', Value: 'anthropic' }, { Name: 'service', Value: 'itapi' }]],
      ]),
    );
  });

  it('alarms on DynamoDB throttle events of each table', () => {
    const [, keys] = alarms().find(([name]) => name === 'DynamoDbThrottles-keys')!;
    const names = keys.Metrics.filter((m: Props) => m.MetricStat).map((m: Props) => m.MetricStat.Metric.MetricName).sort();
    // The table's and each of its two indexes' (test/infra/operations.test.ts checks the dimensions).
    expect(names).toEqual(['ReadThrottleEvents', 'ReadThrottleEvents', 'ReadThrottleEvents', 'WriteThrottleEvents', 'WriteThrottleEvents', 'WriteThrottleEvents']);
    expect(JSON.stringify(keys.Metrics)).toContain(logicalIdByPath(s.json, 'Gateway/Tables/Keys/Resource'));
  });

  it('builds one dashboard', () => {
    const dashboards = resourcesOfType(s.json, 'AWS::CloudWatch::Dashboard');
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify((dashboards[0][1].Properties as Props).DashboardBody);
    for (const metric of ['Requests', 'TimeToFirstToken', 'CostMicroUsd', 'PromptTokens', 'ReadThrottleEvents', '5XXError']) {
      expect(body).toContain(metric);
    }
  });
});

describe('outputs and cdk-nag', () => {
  it('outputs both base URLs, the admin URL, the table names and the secret name', () => {
    const outputs = s.json.Outputs as Props;
    for (const name of [
      'FunctionBaseUrl',
      'ApiBaseUrl',
      'AdminUrl',
      'ProviderSecretName',
      'KeysTableName',
      'TiersTableName',
      'AccountsTableName',
      'UsageTableName',
      'SessionsTableName',
      'ConsoleUrl',
      'StripeWebhookUrl',
    ]) {
      expect(outputs[name]).toBeDefined();
    }
    expect(JSON.stringify(outputs.ConsoleUrl.Value)).toMatch(/"FunctionUrl"\]\},"console\/"\]/);
    expect(JSON.stringify(outputs.StripeWebhookUrl.Value)).toMatch(/"FunctionUrl"\]\},"console\/stripe\/webhook"\]/);
    expect(JSON.stringify(outputs.FunctionBaseUrl.Value)).toMatch(/"FunctionUrl"\]\},"v1"\]/);
    expect(JSON.stringify(outputs.ApiBaseUrl.Value)).toMatch(/"\/v1"\]/);
    expect(JSON.stringify(outputs.AdminUrl.Value)).toMatch(/"\/admin"\]/);
  });

  it('passes AWS Solutions checks with every acknowledgement giving a specific reason', () => {
    const report = JSON.parse(readFileSync(path.join(s.outdir, 'validation-report.json'), 'utf8')) as Props;
    const nag = (report.pluginReports as Props[]).find((p) => p.pluginName === 'AwsSolutions');
    expect(nag).toBeDefined();
    expect(nag!.conclusion).toBe('success');
    expect(nag!.violations).toEqual([]);
    for (const suppressed of nag!.suppressedViolations as Props[]) {
      expect({ rule: suppressed.ruleName, reason: suppressed.reason }).toEqual({ rule: suppressed.ruleName, reason: expect.stringMatching(/^.{60,}$/) });
    }
  });
});
