import { App } from 'aws-cdk-lib';
import { createItapiApp } from '../../bin/itapi';
import { cdkJsonContext } from './synth-itapi';

/**
 * What a first `cdk deploy` into a fresh account needs from the template (issue 11, items 1–3):
 * the account's API Gateway logging role before the stage that logs, an alarm topic CloudWatch
 * may publish to, and a REST API name no other stack in the Region shares.
 */

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[]; DeletionPolicy?: string };
type Template = { Resources: Record<string, Resource> };

const ENV = { account: '111122223333', region: 'eu-west-1' };

function synth(context: Record<string, unknown> = {}): Template {
  process.env.CDK_DEFAULT_ACCOUNT = ENV.account;
  process.env.CDK_DEFAULT_REGION = ENV.region;
  try {
    const { app, stack } = createItapiApp({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], alarmEmail: 'ops@example.com', ...context } });
    // cdk-nag runs in the app: an unacknowledged finding throws here.
    return (app as App).synth().getStackByName(stack.stackName).template as Template;
  } finally {
    delete process.env.CDK_DEFAULT_ACCOUNT;
    delete process.env.CDK_DEFAULT_REGION;
  }
}

const ofType = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);

/** Resolves what CloudFormation would for this account and Region: Fn::Join, Ref to pseudo parameters, Fn::GetAtt Arn of topics. */
function resolve(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map(resolve).join(v['Fn::Join'][0]);
  if (v.Ref === 'AWS::Partition') return 'aws';
  if (v.Ref === 'AWS::Region') return ENV.region;
  if (v.Ref === 'AWS::AccountId') return ENV.account;
  if (v.Ref) return `ref:${v.Ref}`;
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** IAM's ArnLike: `*` matches any run of characters, `?` one. */
const arnLike = (pattern: string, arn: string) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(arn);

describe('API Gateway logging in a fresh account', () => {
  let t: Template;
  beforeAll(() => {
    t = synth();
  });

  it('sets the account’s CloudWatch Logs role, and creates the logging stage only after it', () => {
    const [[accountId, account]] = ofType(t, 'AWS::ApiGateway::Account');
    const roleId = account.Properties.CloudWatchRoleArn['Fn::GetAtt'][0];
    const role = t.Resources[roleId];
    expect(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({ Service: 'apigateway.amazonaws.com' });
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('service-role/AmazonAPIGatewayPushToCloudWatchLogs');
    const [[, stage]] = ofType(t, 'AWS::ApiGateway::Stage');
    expect(stage.Properties.AccessLogSetting).toBeDefined();
    expect(stage.DependsOn).toContain(accountId);
    // Account-wide: left in place when the stack goes, so other APIs keep logging.
    expect([account.DeletionPolicy, role.DeletionPolicy]).toEqual(['Retain', 'Retain']);
  });

  it('can leave the account setting alone, or turn access logs off', () => {
    const without = synth({ apiGatewayCloudWatchRole: 'false' });
    expect(ofType(without, 'AWS::ApiGateway::Account')).toEqual([]);
    const noLogs = synth({ apiGatewayCloudWatchRole: 'false', apiAccessLogs: 'false' });
    expect(ofType(noLogs, 'AWS::ApiGateway::Account')).toEqual([]);
    expect(ofType(noLogs, 'AWS::ApiGateway::Stage')[0][1].Properties.AccessLogSetting).toBeUndefined();
  });
});

describe('alarm e-mails', () => {
  let t: Template;
  beforeAll(() => {
    t = synth();
  });

  it('let every alarm of the stack publish to the topic, and no alarm of another account', () => {
    // The alarm topic: the one CloudWatch may publish to (the other is the low-balance e-mail topic).
    const alarmPolicies = ofType(t, 'AWS::SNS::TopicPolicy').filter(([, p]) => JSON.stringify(p).includes('cloudwatch.amazonaws.com'));
    expect(alarmPolicies).toHaveLength(1);
    const [[, policy]] = alarmPolicies;
    expect(policy.Properties.Topics).toHaveLength(1);
    const topicId = policy.Properties.Topics[0].Ref as string;
    expect(ofType(t, 'AWS::SNS::Topic').map(([id]) => id)).toContain(topicId);
    const statements = policy.Properties.PolicyDocument.Statement as Array<Record<string, any>>;
    const allow = statements.filter((s) => s.Effect === 'Allow' && s.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(allow).toHaveLength(1);
    expect(allow[0].Action).toBe('sns:Publish');
    expect(allow[0].Resource).toEqual({ Ref: topicId });
    expect(allow[0].Condition.StringEquals).toEqual({ 'aws:SourceAccount': ENV.account });
    const pattern = resolve(allow[0].Condition.ArnLike['aws:SourceArn']);

    const alarms = ofType(t, 'AWS::CloudWatch::Alarm');
    expect(alarms.length).toBeGreaterThan(10);
    for (const [id, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
      const arn = `arn:aws:cloudwatch:${ENV.region}:${ENV.account}:alarm:${resolve(alarm.Properties.AlarmName)}`;
      expect({ id, allowed: arnLike(pattern, arn) }).toEqual({ id, allowed: true });
    }
    expect(arnLike(pattern, `arn:aws:cloudwatch:${ENV.region}:444455556666:alarm:Itapi-Gateway-Monitoring-Gateway5xxRate`)).toBe(false);
    expect(arnLike(pattern, `arn:aws:cloudwatch:${ENV.region}:${ENV.account}:alarm:SomeoneElsesAlarm`)).toBe(false);
    // Still TLS only.
    expect(statements.some((s) => s.Effect === 'Deny' && JSON.stringify(s.Condition).includes('aws:SecureTransport'))).toBe(true);
  });

  it('name the alarms and the dashboard after the stack', () => {
    const [[, dashboard]] = ofType(t, 'AWS::CloudWatch::Dashboard');
    expect(dashboard.Properties.DashboardName).toBe('Itapi-Gateway-Monitoring');
    for (const [, alarm] of ofType(t, 'AWS::CloudWatch::Alarm')) expect(alarm.Properties.AlarmName).toMatch(/^Itapi-Gateway-Monitoring-[A-Za-z0-9-]+$/);
  });

  it('subscribe the e-mail address given', () => {
    const [[, subscription]] = ofType(t, 'AWS::SNS::Subscription');
    expect(subscription.Properties).toMatchObject({ Protocol: 'email', Endpoint: 'ops@example.com' });
  });
});

describe('the REST API name', () => {
  it('is the stack’s own, and is what the API Gateway 5xx alarm watches', () => {
    const names = ['Itapi', 'ItapiStaging'].map((stackName) => {
      const t = synth({ stackName });
      const [[, api]] = ofType(t, 'AWS::ApiGateway::RestApi');
      const [, alarm] = ofType(t, 'AWS::CloudWatch::Alarm').find(([id]) => id.includes('ApiGateway5xxRate'))!;
      const dimensions = (alarm.Properties.Metrics as Array<Record<string, any>>).flatMap((m) => m.MetricStat?.Metric.Dimensions ?? []);
      expect(dimensions).toEqual([{ Name: 'ApiName', Value: api.Properties.Name }]);
      return api.Properties.Name as string;
    });
    expect(names).toEqual(['Itapi-Gateway-Api', 'ItapiStaging-Gateway-Api']);
  });
});
