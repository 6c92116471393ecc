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
