import { App, Stack, Validations } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { createItapiApp } from '../../bin/itapi';
import { ItapiGateway } from '../../lib';
import { cdkJsonContext } from './synth-itapi';

// Bundling is skipped here (`aws:cdk:bundling-stacks: []`): these tests are about the checks, not the code.
const noBundling = { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] };

describe('cdk-nag AWS Solutions checks', () => {
  it('run in the app bin/itapi.ts builds, so an unacknowledged finding fails synthesis', () => {
    const { app, stack } = createItapiApp({ context: noBundling });
    new sns.Topic(stack, 'UnencryptedTopic'); // AwsSolutions-SNS3: no SSL enforcement
    expect(() => app.synth()).toThrow(/AwsSolutions-SNS3/);
  });

  it('pass for ItapiGateway dropped into an app of one’s own, with the CORS and Bedrock options on', () => {
    const app = new App({ context: noBundling });
    const stack = new Stack(app, 'Team', { env: { account: '111122223333', region: 'eu-central-1' } });
    new ItapiGateway(stack, 'Gateway', {
      corsOrigins: ['https://chat.example.com'],
      alarmEmail: 'ops@example.com',
      catalog: {
        models: {
          sonnet: {
            owned_by: 'anthropic',
            pricing: { input_per_mtok: 3, output_per_mtok: 15 },
            context_window: 200_000,
            max_output_tokens: 8192,
            routes: [{ provider: 'bedrock', model: 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0' }],
          },
        },
      },
    });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).not.toThrow();
  });
});
