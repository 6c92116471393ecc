import { Match } from 'aws-cdk-lib/assertions';
import { logicalIdByPath, synthesizeItapi, type SynthesizedItapi } from './synth-itapi';

/**
 * Low-balance alerts and Stripe in AWS: the alert queue (with its dead-letter queue and alarm)
 * the chat function sends to and the sweeper function delivers from, and the alarm on paid
 * Stripe events that credited nothing.
 */

let s: SynthesizedItapi;
beforeAll(() => {
  s = synthesizeItapi();
}, 240_000);

it('queues fired alerts for the sweeper function, with a dead-letter queue, and lets the chat function send to it', () => {
  const queue = logicalIdByPath(s.json, '/Sweeper/Alerts/Resource');
  const dlq = logicalIdByPath(s.json, '/Sweeper/AlertDeadLetters/Resource');
  s.template.hasResource('AWS::SQS::Queue', {
    Properties: Match.objectLike({ RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: 4 }, SqsManagedSseEnabled: true }),
  });
  const sweeperFn = logicalIdByPath(s.json, '/Sweeper/Handler/Function/Resource');
  s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    EventSourceArn: { 'Fn::GetAtt': [queue, 'Arn'] },
    FunctionName: { Ref: sweeperFn },
    FunctionResponseTypes: ['ReportBatchItemFailures'],
  });
  s.template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ ITAPI_ALERT_QUEUE_ARN: { 'Fn::GetAtt': [queue, 'Arn'] }, ITAPI_ALERT_QUEUE_URL: { Ref: queue } }) },
  });
  const chatFn = logicalIdByPath(s.json, '/Chat/Handler/Function/Resource');
  const chat = s.json.Resources[chatFn].Properties as { Environment: { Variables: Record<string, unknown> }; Role: unknown };
  expect(chat.Environment.Variables.ITAPI_ALERT_QUEUE_URL).toEqual({ Ref: queue });
  const sendsToQueue = Object.values(s.json.Resources).filter(
    (r) =>
      r.Type === 'AWS::IAM::Policy' &&
      JSON.stringify(r.Properties).includes('sqs:SendMessage') &&
      JSON.stringify(r.Properties).includes(`"${queue}"`),
  );
  // The chat function's role and the sweeper's own (alerts fired by sweeps).
  expect(sendsToQueue.length).toBeGreaterThanOrEqual(2);
});

it('alarms on undelivered alerts and on paid Stripe events that credited nothing', () => {
  s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    AlarmName: Match.stringLikeRegexp('UndeliveredAlerts$'),
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Threshold: 1,
  });
  s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    AlarmName: Match.stringLikeRegexp('StripeEventsIgnored$'),
    MetricName: 'StripeEventsIgnored',
    Namespace: 'Itapi',
    Dimensions: [{ Name: 'service', Value: 'itapi' }],
    Threshold: 1,
  });
});

it('publishes e-mail alerts to an encrypted, TLS-only SNS topic the sweeper function may publish and subscribe to, named in its env', () => {
  const topic = logicalIdByPath(s.json, '/Sweeper/AlertEmails/Resource');
  const props = s.json.Resources[topic].Properties as { KmsMasterKeyId: unknown };
  expect(JSON.stringify(props.KmsMasterKeyId)).toContain('alias/aws/sns');
  // TLS only: a topic policy denying publishes without aws:SecureTransport.
  s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
    Topics: [{ Ref: topic }],
    PolicyDocument: Match.objectLike({
      Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
    }),
  });
  const sweeperFn = logicalIdByPath(s.json, '/Sweeper/Handler/Function/Resource');
  const fn = s.json.Resources[sweeperFn].Properties as { Environment: { Variables: Record<string, unknown> }; Role: { 'Fn::GetAtt': [string, string] } };
  expect(fn.Environment.Variables.ITAPI_ALERT_TOPIC_ARN).toEqual({ Ref: topic });
  const role = fn.Role['Fn::GetAtt'][0];
  const statements = Object.values(s.json.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify((r.Properties as { Roles: unknown }).Roles).includes(`"${role}"`))
    .flatMap((r) => (r.Properties as { PolicyDocument: { Statement: Array<{ Action: string | string[]; Resource: unknown }> } }).PolicyDocument.Statement);
  const on = (action: string) => statements.filter((st) => [st.Action].flat().includes(action)).map((st) => st.Resource);
  expect(on('sns:Publish')).toContainEqual({ Ref: topic });
  expect(on('sns:Subscribe')).toContainEqual({ Ref: topic });
  // Nobody else publishes: the chat function's role has no SNS permission.
  const chatFn = logicalIdByPath(s.json, '/Chat/Handler/Function/Resource');
  const chatRole = (s.json.Resources[chatFn].Properties as { Role: { 'Fn::GetAtt': [string, string] } }).Role['Fn::GetAtt'][0];
  const chatPolicies = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify((r.Properties as { Roles: unknown }).Roles).includes(`"${chatRole}"`));
  expect(JSON.stringify(chatPolicies)).not.toContain('sns:');
});
