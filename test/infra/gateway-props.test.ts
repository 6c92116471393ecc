import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { ItapiGateway, type ItapiCatalog } from '../../lib';
import { ADMIN_FUNCTION_PATH, CHAT_FUNCTION_PATH, findFunctionBundleDir } from './cdk-bundle';
import { logicalIdByPath, resourcesOfType, synthesizeItapi, type SynthesizedItapi } from './synth-itapi';

type Props = Record<string, any>;

const EXISTING_SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:team/llm-keys-AbCdEf';

/** A catalog big enough that it could never live in a 4 KB environment variable. */
const catalog: ItapiCatalog = {
  models: {
    'claude-3-5-sonnet-bedrock': {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15 },
      context_window: 200_000,
      max_output_tokens: 8192,
      routes: [
        { provider: 'bedrock', model: 'anthropic.claude-3-5-sonnet-20241022-v2:0', region: 'us-east-1' },
        { provider: 'anthropic', secret: 'anthropic', model: 'claude-3-5-sonnet-20241022' },
      ],
    },
    'claude-3-7-sonnet-profile': {
      owned_by: 'anthropic',
      pricing: { input_per_mtok: 3, output_per_mtok: 15 },
      context_window: 200_000,
      max_output_tokens: 8192,
      routes: [{ provider: 'bedrock', model: 'us.anthropic.claude-3-7-sonnet-20250219-v1:0', region: 'us-west-2' }],
    },
    ...Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [
        `local-model-${i}`,
        {
          owned_by: 'team',
          pricing: { input_per_mtok: 0.1, output_per_mtok: 0.2 },
          context_window: 32_000,
          max_output_tokens: 4096,
          routes: [{ provider: 'openai-compatible' as const, base_url: 'http://vllm.internal:8000/v1', model: `org/model-${i}` }],
        },
      ]),
    ),
  },
};

let s: SynthesizedItapi;
beforeAll(() => {
  s = synthesizeItapi({
    props: {
      env: { account: '111122223333', region: 'eu-west-1' },
      catalog,
      tiers: [
        { id: 'hobby', rpm: 5, tpm: 10_000, models: ['local-model-0'], description: 'Hobby' },
        { id: 'team', rpm: 120, tpm: 250_000 },
      ],
      memorySize: 1024,
      reservedConcurrency: 50,
      alarmEmail: 'ops@example.com',
      corsOrigins: ['https://chat.example.com'],
      removalPolicy: RemovalPolicy.DESTROY,
      deletionProtection: false,
      metricsNamespace: 'TeamGateway',
      topUpMinUsd: 10,
      topUpMaxUsd: 250.5,
      consoleUrl: 'https://llm.example.com/console/',
      responsesTtlDays: 7,
    },
  });
});

function chatEnv(): Props {
  return (s.json.Resources[logicalIdByPath(s.json, CHAT_FUNCTION_PATH)].Properties as Props).Environment.Variables;
}

function chatStatements(): Props[] {
  const [policy] = resourcesOfType(s.json, 'AWS::IAM::Policy').filter(([id]) => id.startsWith('GatewayChatHandlerRole'));
  return (policy[1].Properties as Props).PolicyDocument.Statement;
}

describe('catalog from props', () => {
  it('reaches the function as a file in the bundle, not as an environment variable', () => {
    const env = chatEnv();
    expect(env.ITAPI_MODELS).toBe('/var/task/catalog.json');
    const envText = JSON.stringify(env);
    expect(envText).not.toContain('local-model-0');
    expect(envText.length).toBeLessThan(4096);
    expect(JSON.stringify(catalog).length).toBeGreaterThan(4096);

    const dir = findFunctionBundleDir(s.outdir, s.stack.artifactId, CHAT_FUNCTION_PATH);
    expect(JSON.parse(readFileSync(path.join(dir, 'catalog.json'), 'utf8'))).toEqual(catalog);
  });

  it('reaches the admin function the same way', () => {
    const adminEnv = (s.json.Resources[logicalIdByPath(s.json, ADMIN_FUNCTION_PATH)].Properties as Props).Environment.Variables;
    expect(adminEnv.ITAPI_MODELS).toBe('/var/task/catalog.json');
    const dir = findFunctionBundleDir(s.outdir, s.stack.artifactId, ADMIN_FUNCTION_PATH);
    expect(JSON.parse(readFileSync(path.join(dir, 'catalog.json'), 'utf8'))).toEqual(catalog);
  });

  it('grants Bedrock invoke only on the catalog’s Bedrock models', () => {
    const bedrock = chatStatements().filter((st) => JSON.stringify(st.Action).includes('bedrock:'));
    expect(bedrock.map((st) => st.Sid)).toEqual(['InvokeCatalogBedrockModels', 'InvokeModelsThroughCatalogProfiles']);
    for (const st of bedrock) expect([st.Action].flat().sort()).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
    const direct = [bedrock[0].Resource].flat().map((r: unknown) => JSON.stringify(r));
    expect(direct).toHaveLength(2);
    expect(direct.join('\n')).toContain(':bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0');
    expect(direct.join('\n')).toContain(':bedrock:us-west-2:111122223333:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0');
    // The profile's model in any destination Region, only through the profile.
    expect(JSON.stringify(bedrock[1].Resource)).toContain(':bedrock:*::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0');
    expect(JSON.stringify(bedrock[1].Condition)).toContain('inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0');
  });

  it('alarms on the error rate of each provider the catalog routes to', () => {
    const names = resourcesOfType(s.json, 'AWS::CloudWatch::Alarm')
      .map(([, r]) => String(r.Metadata?.['aws:cdk:path']).split('/').at(-2))
      .filter((n) => n?.startsWith('UpstreamErrorRate-'))
      .sort();
    expect(names).toEqual(['UpstreamErrorRate-anthropic', 'UpstreamErrorRate-bedrock', 'UpstreamErrorRate-openai-compatible']);
    expect(JSON.stringify(resourcesOfType(s.json, 'AWS::CloudWatch::Alarm'))).toContain('"Namespace":"TeamGateway"');
    expect(chatEnv().ITAPI_METRICS_NAMESPACE).toBe('TeamGateway');
  });
});

describe('other props', () => {
  it('seeds the tiers given', () => {
    const [[, seed]] = resourcesOfType(s.json, 'Custom::ItapiTierSeed');
    expect(JSON.parse((seed.Properties as Props).TiersJson)).toEqual([
      { id: 'hobby', rpm: 5, tpm: 10_000, models: ['local-model-0'], description: 'Hobby' },
      { id: 'team', rpm: 120, tpm: 250_000 },
    ]);
  });

  it('keeps stored responses for responsesTtlDays', () => {
    expect(chatEnv().ITAPI_RESPONSES_TTL_DAYS).toBe('7');
  });

  it('sets memory and reserved concurrency', () => {
    expect(s.json.Resources[logicalIdByPath(s.json, CHAT_FUNCTION_PATH)].Properties).toMatchObject({
      MemorySize: 1024,
      ReservedConcurrentExecutions: 50,
    });
  });

  it('subscribes the alarm email', () => {
    s.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });

  it('configures CORS in one place, the app: no Function URL Cors, no REST API preflight, the origins in the function', () => {
    const [[, url]] = resourcesOfType(s.json, 'AWS::Lambda::Url');
    expect((url.Properties as Props).Cors).toBeUndefined();
    const methods = resourcesOfType(s.json, 'AWS::ApiGateway::Method').map(([, r]) => r.Properties as Props);
    expect(methods.filter((m) => m.HttpMethod === 'OPTIONS' || m.Integration?.Type === 'MOCK')).toEqual([]);
    // Preflights reach the function through the proxy's ANY method, as every method the API has does.
    expect(methods.filter((m) => m.HttpMethod === 'ANY').length).toBeGreaterThan(0);
    expect(chatEnv().ITAPI_CORS_ORIGINS).toBe('https://chat.example.com');
    expect(JSON.stringify(s.json)).not.toMatch(/Access-Control-Allow-Origin/i);
  });

  it('passes the top-up bounds to the console and a custom console URL to sign-in links', () => {
    expect(chatEnv()).toMatchObject({ ITAPI_TOP_UP_MIN_USD: '10', ITAPI_TOP_UP_MAX_USD: '250.5' });
    const admin = (s.json.Resources[logicalIdByPath(s.json, ADMIN_FUNCTION_PATH)].Properties as Props).Environment.Variables;
    expect(admin.ITAPI_CONSOLE_URL).toBe('https://llm.example.com/console/');
  });

  it('honours removal policy and deletion protection', () => {
    for (const role of ['Keys', 'Tiers', 'Accounts', 'Usage', 'Sessions', 'Responses']) {
      const table = s.json.Resources[logicalIdByPath(s.json, `Gateway/Tables/${role}/Resource`)];
      expect(table.DeletionPolicy).toBe('Delete');
      expect((table.Properties as Props).Replicas[0].DeletionProtectionEnabled).toBe(false);
    }
  });
});

describe('an existing provider secret', () => {
  it('is used instead of a new one, and is the only secret the function may read', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Own', { env: { account: '111122223333', region: 'eu-west-1' } });
    const gateway = new ItapiGateway(stack, 'Gateway', {
      providerSecret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Keys', EXISTING_SECRET_ARN),
    });
    const template = app.synth().getStackByName('Own').template as { Resources: Record<string, { Type: string; Properties: Props }> };
    expect(Object.values(template.Resources).filter((r) => r.Type === 'AWS::SecretsManager::Secret')).toEqual([]);
    const fnId = stack.getLogicalId(gateway.chatFunction.node.defaultChild as never);
    expect(template.Resources[fnId].Properties.Environment.Variables.ITAPI_PROVIDER_SECRET_ID).toBe(EXISTING_SECRET_ARN);
    const statements = Object.entries(template.Resources)
      .filter(([id, r]) => r.Type === 'AWS::IAM::Policy' && id.startsWith('GatewayChatHandlerRole'))
      .flatMap(([, r]) => r.Properties.PolicyDocument.Statement as Props[]);
    const secretStatements = statements.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('secretsmanager:')));
    expect(secretStatements).toHaveLength(1);
    expect(secretStatements[0].Resource).toBe(EXISTING_SECRET_ARN);
  });

  it('is passed to the runtime by name when imported by name (a partial ARN may not resolve)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'ByName');
    const gateway = new ItapiGateway(stack, 'Gateway', {
      providerSecret: secretsmanager.Secret.fromSecretNameV2(stack, 'Keys', 'team/llm-keys'),
    });
    const template = app.synth().getStackByName('ByName').template as { Resources: Record<string, { Properties: Props }> };
    const fnId = stack.getLogicalId(gateway.chatFunction.node.defaultChild as never);
    expect(template.Resources[fnId].Properties.Environment.Variables.ITAPI_PROVIDER_SECRET_ID).toBe('team/llm-keys');
  });
});

describe('props validation', () => {
  const build = (props: ConstructorParameters<typeof ItapiGateway>[2]): ItapiGateway => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    return new ItapiGateway(new Stack(app, 'V'), 'Gateway', props);
  };

  it('rejects a catalog route with an unknown provider', () => {
    expect(() =>
      build({
        catalog: { models: { x: { ...catalog.models['local-model-0'], routes: [{ provider: 'azure' as never, model: 'x' }] } } },
      }),
    ).toThrow(/models\["x"\]\.routes\[0\]\.provider "azure"/);
  });

  it('rejects duplicate or negative tiers', () => {
    expect(() => build({ tiers: [{ id: 'a', rpm: 1, tpm: 1 }, { id: 'a', rpm: 2, tpm: 2 }] })).toThrow(/"a" appears twice/);
    expect(() => build({ tiers: [{ id: 'a', rpm: -1, tpm: 1 }] })).toThrow(/rpm must be a non-negative integer/);
  });

  it('rejects a malformed alarm email and out-of-range memory', () => {
    expect(() => build({ alarmEmail: 'not-an-email' })).toThrow(/alarmEmail/);
    expect(() => build({ memorySize: 64 })).toThrow(/memorySize/);
    expect(() => build({ reservedConcurrency: 0 })).toThrow(/reservedConcurrency/);
    expect(() => build({ responsesTtlDays: 0 })).toThrow(/responsesTtlDays/);
  });

  it('rejects top-up bounds Stripe cannot charge or that are upside down', () => {
    expect(() => build({ topUpMinUsd: 0.25 })).toThrow(/topUpMinUsd: expected whole cents of at least 0\.50/);
    expect(() => build({ topUpMaxUsd: 10.001 })).toThrow(/topUpMaxUsd/);
    expect(() => build({ topUpMinUsd: 50, topUpMaxUsd: 20 })).toThrow(/topUpMaxUsd \(20\) is below topUpMinUsd \(50\)/);
  });
});
