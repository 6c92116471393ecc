import { Duration, RemovalPolicy } from 'aws-cdk-lib';
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
  /**
   * Origins allowed to call `/v1` from a browser (answers the preflight; the app adds the
   * CORS headers of the actual response).
   * @default - no CORS preflight
   */
  readonly corsOrigins?: string[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A regional REST API in front of the same chat function as the Function URL: `/v1/{proxy+}`
 * and the console (`/console`, `/console/{proxy+}`) streamed (`ResponseTransferMode.STREAM`,
 * 15-minute integration timeout), `/admin/{proxy+}` on the admin function with IAM (SigV4)
 * authorization, JSON access logs and stage throttling.
 */
export class ItapiRestApi extends Construct {
  public readonly api: apigateway.RestApi;
  public readonly accessLogs: logs.LogGroup;
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
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.api = new apigateway.RestApi(this, 'Api', {
      description: 'itapi: OpenAI-compatible LLM gateway (/v1) and admin API (/admin, IAM)',
      endpointConfiguration: { types: [apigateway.EndpointType.REGIONAL] },
      cloudWatchRole: false,
      deployOptions: {
        stageName: props.stageName ?? 'prod',
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
      'JSON access logs are on for every request; execution logging needs the account-wide API Gateway CloudWatch role, a per-account setting this stack does not take over (cloudWatchRole: false).',
    );
    acknowledgeNagRule(
      this.api,
      'AwsSolutions-APIG3',
      'No WAF by default: every request is authenticated by gateway key and rate-limited per account in code, and stage throttling caps totals; operators can associate their own web ACL with the stage.',
    );

    const v1 = this.api.root.addResource('v1', {
      defaultCorsPreflightOptions: props.corsOrigins?.length
        ? {
            allowOrigins: props.corsOrigins,
            allowMethods: ['GET', 'POST', 'OPTIONS'],
            // `*` covers the SDKs' own headers (x-stainless-*, openai-*); browsers need `authorization` by name.
            allowHeaders: ['authorization', 'content-type', '*'],
            maxAge: Duration.hours(1),
          }
        : undefined,
    });
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
    if (props.corsOrigins?.length) {
      acknowledgeNagRule(v1, 'AwsSolutions-APIG4', 'CORS preflight (OPTIONS) is answered by a mock integration and must be unauthenticated by the CORS protocol.');
      acknowledgeNagRule(v1, 'AwsSolutions-COG4', 'CORS preflight (OPTIONS) must be unauthenticated by the CORS protocol.');
    }

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
