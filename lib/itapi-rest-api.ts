import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeNagRule } from './itapi-nag';

export interface ItapiRestApiProps {
  /** Serves `/v1/{proxy+}`, streamed. */
  readonly chatFunction: lambda.IFunction;
  /** Serves `/admin/{proxy+}`, behind IAM authorization. */
  readonly adminFunction: lambda.IFunction;
  /**
   * Integration timeout of the streamed `/v1` routes. Above 29 s API Gateway requires the
   * `STREAM` response transfer mode, which these routes use.
   * @default Duration.minutes(15)
   */
  readonly chatTimeout?: Duration;
  /** @default 'prod' */
  readonly stageName?: string;
  /** Stage-wide steady-state requests per second. @default 500 */
  readonly throttlingRateLimit?: number;
  /** Stage-wide burst. @default 1000 */
  readonly throttlingBurstLimit?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Set the account's API Gateway CloudWatch Logs role in this Region (`AWS::ApiGateway::Account`),
   * which API Gateway needs to write any log: without it a stage with access logs fails to create
   * ("CloudWatch Logs role ARN must be set in account settings to enable logging"). The setting is
   * account-wide per Region: it replaces a role set before (with one of the same AWS managed policy,
   * AmazonAPIGatewayPushToCloudWatchLogs), and the role stays when the stack is deleted, so other
   * APIs keep logging. Turn it off when the account already has the role and you manage it elsewhere.
   * @default true
   */
  readonly cloudWatchRole?: boolean;
  /**
   * JSON access logs for every request of the stage. Needs the account's CloudWatch Logs role
   * (`cloudWatchRole`, or one set before).
   * @default true
   */
  readonly accessLogs?: boolean;
}

/**
 * A regional REST API in front of the same chat function as the Function URL: `/v1/{proxy+}`
 * and the console (`/console`, `/console/{proxy+}`) streamed (`ResponseTransferMode.STREAM`,
 * 15-minute integration timeout), `/admin/{proxy+}` on the admin function with IAM (SigV4)
 * authorization, JSON access logs and stage throttling.
 */
export class ItapiRestApi extends Construct {
  public readonly api: apigateway.RestApi;
  /** The stage's access log group; undefined when `accessLogs` is off. */
  public readonly accessLogs?: logs.LogGroup;
  /** `https://…/prod/v1`, the base URL OpenAI clients use. */
  public readonly baseUrl: string;
  /** `https://…/prod/admin`, the admin API's root (for `ITAPI_ADMIN_URL`). */
  public readonly adminUrl: string;
  /** `https://…/prod/console/`, the account holders' console on this API. */
  public readonly consoleUrl: string;
  private readonly adminResource: apigateway.Resource;

  constructor(scope: Construct, id: string, props: ItapiRestApiProps) {
    super(scope, id);
    const chatTimeout = props.chatTimeout ?? Duration.minutes(15);
    const cloudWatchRole = props.cloudWatchRole ?? true;
    const accessLogs = props.accessLogs ?? true;
    if (accessLogs && !cloudWatchRole) {
      Annotations.of(this).addInfo(
        'itapi: access logs without cloudWatchRole need the account’s API Gateway CloudWatch Logs role to be set already in this Region (aws apigateway get-account).',
      );
    }
    this.accessLogs = accessLogs
      ? new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY })
      : undefined;

    const stack = Stack.of(this);
    this.api = new apigateway.RestApi(this, 'Api', {
      // Its 5xx alarm reads ApiName: a name of its own, so another API named alike in the Region never merges into it.
      restApiName: [stack.stackName, ...this.node.path.split('/').slice(stack.node.path.split('/').length)].join('-'),
      description: 'itapi: OpenAI-compatible LLM gateway (/v1) and admin API (/admin, IAM)',
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      cloudWatchRole,
      deployOptions: {
        stageName: props.stageName ?? 'prod',
        ...(this.accessLogs
          ? {
              accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
              accessLogFormat: apigateway.AccessLogFormat.jsonWithStandardFields({
                caller: false,
                httpMethod: true,
                ip: true,
                protocol: true,
                requestTime: true,
                resourcePath: true,
                responseLength: true,
                status: true,
                user: true,
              }),
            }
          : {}),
        metricsEnabled: true,
        throttlingRateLimit: props.throttlingRateLimit ?? 500,
        throttlingBurstLimit: props.throttlingBurstLimit ?? 1000,
      },
    });

    acknowledgeNagRule(
      this.api,
      'AwsSolutions-APIG2',
      'The chat app validates every request against the OpenAI schema and answers OpenAI-shaped 400 errors naming the field; API Gateway request validation would answer in its own, non-OpenAI format.',
    );
    acknowledgeNagRule(
      this.api,
      'AwsSolutions-APIG6',
      'JSON access logs record every request; execution logs are off on purpose: they go to a log group API Gateway creates outside the stack with no retention, and the chat function already logs every failure as JSON without keys or prompts.',
    );
    if (!accessLogs) {
      acknowledgeNagRule(this.api, 'AwsSolutions-APIG1', 'Access logs were turned off by the operator (accessLogs: false), for an account without the API Gateway CloudWatch Logs role; the chat function still logs every request.');
    }
    if (cloudWatchRole) {
      acknowledgeNagRule(
        this.api,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        'The account-wide API Gateway CloudWatch Logs role: API Gateway writes every API’s logs in this Region with it, and AWS documents this managed policy for it; a narrower role would break the logging of other APIs in the account.',
      );
    }
    acknowledgeNagRule(
      this.api,
      'AwsSolutions-APIG3',
      'No WAF by default: every request is authenticated by gateway key and rate-limited per account in code, and stage throttling caps totals; operators can associate their own web ACL with the stage.',
    );

    // No preflight here: CORS preflights (OPTIONS) reach the chat function like every method, and
    // the app answers them (ItapiChatFunctionProps.corsOrigins), so CORS is configured in one place.
    const v1 = this.api.root.addResource('v1');
    const chatIntegration = new apigateway.LambdaIntegration(props.chatFunction, {
      proxy: true,
      responseTransferMode: apigateway.ResponseTransferMode.STREAM,
      timeout: chatTimeout,
    });
    const chatProxy = v1.addProxy({
      anyMethod: true,
      defaultIntegration: chatIntegration,
      // The gateway authenticates its own `it_…` keys in code.
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.NONE },
    });

    acknowledgeNagRule(
      chatProxy,
      'AwsSolutions-APIG4',
      'OpenAI clients send `Authorization: Bearer it_…` gateway keys; the chat function authenticates them against SHA-256 hashes in the keys table (401 otherwise), so API Gateway has no authorizer here.',
    );
    acknowledgeNagRule(
      chatProxy,
      'AwsSolutions-COG4',
      'OpenAI SDK clients cannot present Cognito tokens; they are authenticated by gateway keys in the chat function.',
    );

    // The account holders' console: its pages, its JSON API and the Stripe webhook, all on the chat function.
    const consoleResource = this.api.root.addResource('console');
    consoleResource.addMethod('ANY', chatIntegration, { authorizationType: apigateway.AuthorizationType.NONE });
    consoleResource.addProxy({
      anyMethod: true,
      defaultIntegration: chatIntegration,
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.NONE },
    });
    acknowledgeNagRule(
      consoleResource,
      'AwsSolutions-APIG4',
      'The console authenticates in the chat function: a session cookie from a one-time sign-in link (stored hashed in DynamoDB), CSRF checks on every change; its Stripe webhook is verified by signature.',
    );
    acknowledgeNagRule(
      consoleResource,
      'AwsSolutions-COG4',
      'Console users sign in with one-time links their operator issues, not a Cognito user pool; the Stripe webhook is authenticated by its signature.',
    );

    this.adminResource = this.api.root.addResource('admin');
    const adminProxy = this.adminResource.addProxy({
      anyMethod: true,
      defaultIntegration: new apigateway.LambdaIntegration(props.adminFunction, { proxy: true }),
      defaultMethodOptions: { authorizationType: apigateway.AuthorizationType.IAM },
    });

    acknowledgeNagRule(
      adminProxy,
      'AwsSolutions-COG4',
      'The admin API uses IAM (SigV4) authorization: operators and CI call it with AWS credentials, no Cognito user pool needed.',
    );

    this.baseUrl = this.api.urlForPath('/v1');
    this.adminUrl = this.api.urlForPath('/admin');
    this.consoleUrl = this.api.urlForPath('/console/');
  }

  /** Lets a principal call the admin API (`execute-api:Invoke` on `/admin/*` of this stage only). */
  public grantAdminInvoke(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [this.api.arnForExecuteApi('*', '/admin/*', this.api.deploymentStage.stageName)],
    });
  }

  /** API Gateway 5XXError as a rate (the average of a 0/1 metric), in percent. */
  public metricServerErrorRatePercent(period = Duration.minutes(5)): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: '100 * FILL(e, 0)',
      usingMetrics: { e: this.api.metricServerError({ statistic: 'Average', period }) },
      label: 'API Gateway 5XX rate (%)',
      period,
    });
  }
}
