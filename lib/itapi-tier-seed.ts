import { type CfnElement, CustomResource, Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledgeNagRule } from './itapi-nag';
import { ENTRY, ItapiNodeFunction } from './itapi-node-function';

/** A rate-limit tier (ARCHITECTURE §4). Limits belong to the account and are shared by its keys. */
export interface ItapiTier {
  /** Tier id, e.g. `pro`. */
  readonly id: string;
  /** Requests per minute; 0 means "per-account custom limits" (the account's own `rpm`). */
  readonly rpm: number;
  /** Tokens per minute; 0 means "per-account custom limits" (the account's own `tpm`). */
  readonly tpm: number;
  /** Model ids the tier may use. @default - all models */
  readonly models?: string[];
  /** @default - none */
  readonly description?: string;
}

/**
 * Tiers seeded on first deploy. `enterprise` stores rpm 0 / tpm 0: its accounts carry their own
 * custom limits (`POST /admin/accounts` with `rpm` and `tpm`).
 */
export const DEFAULT_TIERS: readonly ItapiTier[] = [
  { id: 'free', rpm: 10, tpm: 20_000, description: 'Free: 10 requests and 20,000 tokens per minute' },
  { id: 'starter', rpm: 60, tpm: 100_000, description: 'Starter: 60 requests and 100,000 tokens per minute' },
  { id: 'pro', rpm: 300, tpm: 500_000, description: 'Pro: 300 requests and 500,000 tokens per minute' },
  { id: 'enterprise', rpm: 0, tpm: 0, description: 'Enterprise: custom per-account limits (rpm/tpm 0 = set on the account)' },
];

export interface ItapiTierSeedProps {
  /** The tiers table. */
  readonly table: dynamodb.ITableV2;
  /** @default DEFAULT_TIERS */
  readonly tiers?: readonly ItapiTier[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

const TIER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function validateTiers(tiers: readonly ItapiTier[]): void {
  const seen = new Set<string>();
  for (const tier of tiers) {
    if (!TIER_ID.test(tier.id)) throw new Error(`tiers: id "${tier.id}" must match ${TIER_ID}`);
    if (seen.has(tier.id)) throw new Error(`tiers: id "${tier.id}" appears twice`);
    seen.add(tier.id);
    for (const field of ['rpm', 'tpm'] as const) {
      if (!Number.isInteger(tier[field]) || tier[field] < 0) {
        throw new Error(`tiers: "${tier.id}".${field} must be a non-negative integer (0 = per-account custom limit)`);
      }
    }
  }
}

/**
 * Seeds tiers into the tiers table at deploy with a custom resource. Each tier is written only if
 * absent (`attribute_not_exists(tier_id)`), so tiers an operator changed later are never
 * overwritten; a tier added to props is written on the next deploy. Deleting the stack or
 * removing a tier from props leaves the items in place.
 */
export class ItapiTierSeed extends Construct {
  public readonly resource: CustomResource;
  public readonly handler: ItapiNodeFunction;
  public readonly provider: cr.Provider;

  constructor(scope: Construct, id: string, props: ItapiTierSeedProps) {
    super(scope, id);
    const tiers = props.tiers ?? DEFAULT_TIERS;
    validateTiers(tiers);
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.handler = new ItapiNodeFunction(this, 'Handler', {
      entry: ENTRY.seedTiers,
      description: 'itapi: seeds rate-limit tiers that do not exist yet (custom resource)',
      memorySize: 256,
      timeout: Duration.minutes(1),
      logRetention,
    });
    props.table.grant(this.handler.function, 'dynamodb:PutItem');

    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.handler.function,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', { retention: logRetention }),
    });
    acknowledgeNagRule(
      this.provider,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'The custom-resources Provider framework function creates its own role with the AWS managed basic execution policy (log writes only); it runs only during deploys.',
    );
    acknowledgeNagRule(
      this.provider,
      `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.handler.function.node.defaultChild as CfnElement)}.Arn>:*]`,
      'The Provider framework may invoke any version or alias of the tier-seeding function (the `:*` suffix); the function itself is named.',
    );
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: this.provider.serviceToken,
      resourceType: 'Custom::ItapiTierSeed',
      properties: {
        TableName: props.table.tableName,
        TiersJson: JSON.stringify(
          tiers.map((t) => ({ id: t.id, rpm: t.rpm, tpm: t.tpm, models: t.models, description: t.description })),
        ),
      },
    });
  }
}
