import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ItapiGateway, type ItapiGatewayProps } from './itapi-gateway';

export interface ItapiStackProps extends StackProps, ItapiGatewayProps {}

/** A stack holding one `ItapiGateway`, with the outputs an operator needs after `cdk deploy`. */
export class ItapiStack extends Stack {
  public readonly gateway: ItapiGateway;

  constructor(scope: Construct, id: string, props: ItapiStackProps = {}) {
    super(scope, id, {
      description: 'itapi: self-hosted OpenAI-compatible LLM gateway',
      ...props,
    });
    this.gateway = new ItapiGateway(this, 'Gateway', props);
    const g = this.gateway;

    new CfnOutput(this, 'FunctionBaseUrl', {
      value: g.functionBaseUrl,
      description: 'OpenAI base URL on the Lambda Function URL (streaming, no 29 s limit)',
    });
    new CfnOutput(this, 'ApiBaseUrl', {
      value: g.apiBaseUrl,
      description: 'OpenAI base URL on the REST API (streaming, stage throttling, access logs)',
    });
    new CfnOutput(this, 'AdminUrl', {
      value: g.adminUrl,
      description: 'Admin API root, IAM (SigV4) signed: ITAPI_ADMIN_URL for `npx itapi`',
    });
    new CfnOutput(this, 'ConsoleUrl', {
      value: g.consoleUrl,
      description: 'Account holders\' console; sign-in links: `npx itapi console-link ACCOUNT`',
    });
    new CfnOutput(this, 'StripeWebhookUrl', {
      value: g.stripeWebhookUrl,
      description: 'Stripe webhook endpoint for checkout.session.completed and checkout.session.async_payment_succeeded (when top-ups are on)',
    });
    new CfnOutput(this, 'ProviderSecretName', {
      value: g.providerSecret.secretName,
      description: 'Secrets Manager secret for upstream keys: put-secret-value --secret-string \'{"openai":"sk-..."}\'',
    });
    new CfnOutput(this, 'ProviderSecretArn', { value: g.providerSecret.secretArn });
    new CfnOutput(this, 'KeysTableName', { value: g.tables.keys.tableName });
    new CfnOutput(this, 'TiersTableName', { value: g.tables.tiers.tableName });
    new CfnOutput(this, 'AccountsTableName', { value: g.tables.accounts.tableName });
    new CfnOutput(this, 'UsageTableName', { value: g.tables.usage.tableName });
    new CfnOutput(this, 'SessionsTableName', { value: g.tables.sessions.tableName });
    new CfnOutput(this, 'ChatLogGroupName', {
      value: g.chat.logGroup.logGroupName,
      description: 'CloudWatch log group of the chat function (a generated name, not /aws/lambda/<function>): one JSON line per request',
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: g.monitoring.topic.topicArn });
    new CfnOutput(this, 'AlarmNamePrefix', {
      value: g.monitoring.alarmNamePrefix,
      description: 'Every alarm is named <prefix>-<what it watches>, e.g. <prefix>-ChatFunctionErrors',
    });
  }
}
