import { App, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ItapiGateway, type ItapiCatalog } from '../../lib';
import { cdkJsonContext } from './synth-itapi';

/**
 * The chat function's Bedrock grants, as the Bedrock User Guide states what each kind of model
 * id needs (issue 11, item 4 and item 9): foundation models in their region; system-defined
 * inference profiles plus their model in every destination Region, only through the profile
 * (and the Region-less model ARN for `global.`); application inference profile ARNs plus
 * whatever they wrap, only through the profile.
 */

type Props = Record<string, any>;

const APP_PROFILE = 'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6';
const SYSTEM_PROFILE_ARN = 'arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.amazon.nova-pro-v1:0';

const route = (model: string, region?: string) => ({
  owned_by: 'test',
  pricing: { input_per_mtok: 1, output_per_mtok: 2 },
  context_window: 200_000,
  max_output_tokens: 8192,
  routes: [{ provider: 'bedrock' as const, model, ...(region ? { region } : {}) }],
});

const catalog: ItapiCatalog = {
  models: {
    direct: route('amazon.nova-micro-v1:0', 'us-east-1'),
    geographic: route('us.anthropic.claude-sonnet-4-5-20250929-v1:0'),
    global: route('global.anthropic.claude-haiku-4-5-20251001-v1:0'),
    application: route(APP_PROFILE),
    'system-arn': route(SYSTEM_PROFILE_ARN),
  },
};

function synth(env?: { account: string; region: string }): Props[] {
  const app = new App({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Team', { env });
  new ItapiGateway(stack, 'Gateway', { catalog });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  // cdk-nag fails synthesis on any finding not acknowledged with a reason.
  const template = app.synth().getStackByName('Team').template as { Resources: Record<string, { Type: string; Properties: Props }> };
  const policy = Object.entries(template.Resources).find(([id, r]) => r.Type === 'AWS::IAM::Policy' && id.startsWith('GatewayChatHandlerRole'))!;
  return (policy[1].Properties.PolicyDocument.Statement as Props[]).filter((st) => JSON.stringify(st.Action).includes('bedrock:'));
}

describe.each([
  ['an environment-agnostic stack', undefined],
  ['a stack with account and region', { account: '111122223333', region: 'us-east-1' }],
])('in %s', (_name, env) => {
  let statements: Props[];
  beforeAll(() => {
    statements = synth(env);
  });
  const text = (value: unknown) => JSON.stringify(value);
  const bySid = (sid: string) => statements.find((st) => st.Sid === sid)!;

  it('grants the foundation model, the profiles and the application profile as they are', () => {
    const direct = [bySid('InvokeCatalogBedrockModels').Resource].flat().map(text).join('\n');
    expect(direct).toMatch(/:bedrock:us-east-1::foundation-model\/amazon\.nova-micro-v1:0"/);
    expect(direct).toMatch(/:inference-profile\/us\.anthropic\.claude-sonnet-4-5-20250929-v1:0"/);
    expect(direct).toMatch(/:inference-profile\/global\.anthropic\.claude-haiku-4-5-20251001-v1:0"/);
    expect(direct).toContain(APP_PROFILE);
    expect(direct).toContain(SYSTEM_PROFILE_ARN);
    // Never an ARN treated as a model id.
    expect(direct).not.toMatch(/foundation-model\/arn:/);
    expect([bySid('InvokeCatalogBedrockModels').Action].flat().sort()).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
  });

  it('grants models behind a profile in every Region, only through a catalog profile', () => {
    const through = bySid('InvokeModelsThroughCatalogProfiles');
    const resources = [through.Resource].flat().map(text).join('\n');
    expect(resources).toMatch(/:bedrock:\*::foundation-model\/anthropic\.claude-sonnet-4-5-20250929-v1:0"/);
    expect(resources).toMatch(/:bedrock:\*::foundation-model\/amazon\.nova-pro-v1:0"/);
    // A global profile authorizes its model under the Region-less ARN too.
    expect(resources).toMatch(/:bedrock:::foundation-model\/anthropic\.claude-haiku-4-5-20251001-v1:0"/);
    // What an application profile wraps is unknown: any model or system profile, through it only.
    expect(resources).toMatch(/:bedrock:\*::foundation-model\/\*"/);
    expect(resources).toMatch(/:inference-profile\/\*"/);
    const profiles = text(through.Condition.StringEquals['bedrock:InferenceProfileArn']);
    expect(profiles).toContain(APP_PROFILE);
    expect(profiles).toContain(SYSTEM_PROFILE_ARN);
    expect(profiles).toMatch(/:inference-profile\/us\.anthropic\.claude-sonnet-4-5-20250929-v1:0"/);
    expect(Object.keys(through.Condition)).toEqual(['StringEquals']);
  });

  it('grants no model in every Region without the profile condition', () => {
    for (const st of statements.filter((s) => s.Sid !== 'InvokeModelsThroughCatalogProfiles')) {
      expect(text(st.Resource)).not.toMatch(/bedrock:\*::foundation-model/);
    }
  });
});
