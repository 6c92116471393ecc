import { RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * Key schemas of ARCHITECTURE §4, repeated by value from `lambda/store/tables.ts`
 * (lib/ never imports runtime code).
 */
export const KEYS_BY_ACCOUNT_INDEX = 'by-account';
export const KEYS_BY_ID_INDEX = 'by-key-id';
export const USAGE_TTL_ATTRIBUTE = 'expires_at';
export const HOLDS_TTL_ATTRIBUTE = 'expires_at';
export const SESSIONS_BY_ACCOUNT_INDEX = 'by-account';
export const SESSIONS_TTL_ATTRIBUTE = 'expires_at';
export const RESPONSES_TTL_ATTRIBUTE = 'expires_at';

export interface ItapiTablesProps {
  /**
   * What happens to the tables when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Deletion protection on every table; while on, even `cdk destroy` cannot drop them.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

const S = dynamodb.AttributeType.STRING;
const N = dynamodb.AttributeType.NUMBER;

/** Item reads, including `ConditionCheck` inside transactions. */
const DATA_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable'];
/** Item writes; `TransactWriteItems` is authorized per item by these actions. */
const DATA_WRITE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'];
/** Granted only on the tables the runtime scans: tiers (the tier cache, `GET /admin/tiers`) and holds (the sweeper). */
const SCAN_ACTIONS = ['dynamodb:Scan'];
/** Granted only on the stored responses (a large response is written in batches of 25 parts). */
const BATCH_WRITE_ACTIONS = ['dynamodb:BatchWriteItem'];

/**
 * The gateway's on-demand tables: keys (by key hash, GSIs by account and by key id), tiers,
 * accounts, the usage ledger (TTL on `expires_at`), holds in flight and stored responses (TTL), and
 * the console's sign-in links and sessions (by hash, GSI by account, TTL on `expires_at`). Each has
 * point-in-time recovery, deletion protection and, by default, a retain policy.
 */
export class ItapiTables extends Construct {
  public readonly keys: dynamodb.TableV2;
  public readonly tiers: dynamodb.TableV2;
  public readonly accounts: dynamodb.TableV2;
  public readonly usage: dynamodb.TableV2;
  /**
   * Holds in flight, one item per admitted request until settled. Its stream carries the items
   * its TTL removes (a day past their deadline: the sweeper was failing) to the sweeper function.
   */
  public readonly holds: dynamodb.TableV2;
  /** Console sign-in links and sessions, stored only as SHA-256 hashes. */
  public readonly sessions: dynamodb.TableV2;
  /** Stored Responses API responses (`store: true`), split into parts by `part`; TTL on `expires_at`. */
  public readonly responses: dynamodb.TableV2;
  /**
   * Usage roll-ups per account, UTC day, key and model (`account_id` + `sk`), written by the usage
   * table's stream consumer (ItapiUsageRollups); TTL on `expires_at`.
   */
  public readonly rollups: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: ItapiTablesProps = {}) {
    super(scope, id);
    const common = {
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    };

    this.keys = new dynamodb.TableV2(this, 'Keys', {
      ...common,
      partitionKey: { name: 'key_hash', type: S },
      globalSecondaryIndexes: [
        {
          indexName: KEYS_BY_ACCOUNT_INDEX,
          partitionKey: { name: 'account_id', type: S },
          sortKey: { name: 'key_id', type: S },
          projectionType: dynamodb.ProjectionType.ALL,
        },
        {
          indexName: KEYS_BY_ID_INDEX,
          partitionKey: { name: 'key_id', type: S },
          projectionType: dynamodb.ProjectionType.ALL,
        },
      ],
    });
    this.tiers = new dynamodb.TableV2(this, 'Tiers', {
      ...common,
      partitionKey: { name: 'tier_id', type: S },
    });
    this.accounts = new dynamodb.TableV2(this, 'Accounts', {
      ...common,
      partitionKey: { name: 'account_id', type: S },
      // Names the account behind throttling when one account outgrows its item (docs/SCALE.md).
      contributorInsightsSpecification: { enabled: true, mode: dynamodb.ContributorInsightsMode.THROTTLED_KEYS },
    });
    this.usage = new dynamodb.TableV2(this, 'Usage', {
      ...common,
      partitionKey: { name: 'account_id', type: S },
      sortKey: { name: 'sk', type: S },
      timeToLiveAttribute: USAGE_TTL_ATTRIBUTE,
      // New ledger items go to the roll-ups consumer (ItapiUsageRollups).
      dynamoStream: dynamodb.StreamViewType.NEW_IMAGE,
    });
    this.holds = new dynamodb.TableV2(this, 'Holds', {
      ...common,
      partitionKey: { name: 'request_id', type: S },
      timeToLiveAttribute: HOLDS_TTL_ATTRIBUTE,
      dynamoStream: dynamodb.StreamViewType.OLD_IMAGE,
    });
    this.sessions = new dynamodb.TableV2(this, 'Sessions', {
      ...common,
      partitionKey: { name: 'id', type: S },
      globalSecondaryIndexes: [
        {
          indexName: SESSIONS_BY_ACCOUNT_INDEX,
          partitionKey: { name: 'account_id', type: S },
          sortKey: { name: 'id', type: S },
          projectionType: dynamodb.ProjectionType.KEYS_ONLY,
        },
      ],
      timeToLiveAttribute: SESSIONS_TTL_ATTRIBUTE,
    });
    this.responses = new dynamodb.TableV2(this, 'Responses', {
      ...common,
      partitionKey: { name: 'response_id', type: S },
      sortKey: { name: 'part', type: N },
      timeToLiveAttribute: RESPONSES_TTL_ATTRIBUTE,
    });
    this.rollups = new dynamodb.TableV2(this, 'Rollups', {
      ...common,
      partitionKey: { name: 'account_id', type: S },
      sortKey: { name: 'sk', type: S },
      timeToLiveAttribute: USAGE_TTL_ATTRIBUTE,
    });
  }

  /** Every table by its role, in a stable order. */
  public get all(): Record<'keys' | 'tiers' | 'accounts' | 'usage' | 'holds' | 'sessions' | 'responses' | 'rollups', dynamodb.TableV2> {
    return {
      keys: this.keys,
      tiers: this.tiers,
      accounts: this.accounts,
      usage: this.usage,
      holds: this.holds,
      sessions: this.sessions,
      responses: this.responses,
      rollups: this.rollups,
    };
  }

  /** The environment contract the runtime reads (`tableNamesFromEnv`). */
  public environment(): Record<string, string> {
    return {
      ITAPI_KEYS_TABLE: this.keys.tableName,
      ITAPI_TIERS_TABLE: this.tiers.tableName,
      ITAPI_ACCOUNTS_TABLE: this.accounts.tableName,
      ITAPI_USAGE_TABLE: this.usage.tableName,
      ITAPI_HOLDS_TABLE: this.holds.tableName,
      ITAPI_SESSIONS_TABLE: this.sessions.tableName,
      ITAPI_RESPONSES_TABLE: this.responses.tableName,
      ITAPI_ROLLUPS_TABLE: this.rollups.tableName,
    };
  }

  /**
   * What the chat function needs: read and write keys (per-key caps, the console's keys),
   * accounts (admission, settlement, top-ups), holds and usage (ledger, including transaction
   * condition checks); read tiers. The sweeper function gets the same.
   */
  public grantGatewayAccess(grantee: iam.IGrantable): void {
    this.grantData(grantee, this.keys, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS);
    this.grantData(grantee, this.accounts, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS);
    this.grantData(grantee, this.holds, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS);
    this.grantData(grantee, this.usage, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS);
    this.grantData(grantee, this.tiers, DATA_READ_ACTIONS, SCAN_ACTIONS);
  }

  /** What the sweeper function needs besides the gateway's access: scan the holds table for overdue holds. */
  public grantSweep(grantee: iam.IGrantable): iam.Grant {
    return this.grantData(grantee, this.holds, SCAN_ACTIONS);
  }

  /** What the console (served by the chat function) needs besides: read and write its sessions and sign-in links, read the roll-ups. */
  public grantConsoleAccess(grantee: iam.IGrantable): void {
    this.grantData(grantee, this.sessions, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS);
    this.grantData(grantee, this.rollups, DATA_READ_ACTIONS);
  }

  /** What the roll-ups consumer needs: mark ledger items rolled up, and add to the roll-ups. */
  public grantRollupAccess(grantee: iam.IGrantable): void {
    this.grantData(grantee, this.usage, ['dynamodb:UpdateItem']);
    this.grantData(grantee, this.rollups, ['dynamodb:UpdateItem']);
  }

  /** What `/v1/responses` needs besides the chat path: read, write and delete stored responses. */
  public grantResponsesAccess(grantee: iam.IGrantable): void {
    this.grantData(grantee, this.responses, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS, BATCH_WRITE_ACTIONS);
  }

  /** What the admin API needs: read and write data in every table but the stored responses (customers' conversations). */
  public grantAdminAccess(grantee: iam.IGrantable): void {
    for (const table of Object.values(this.all)) {
      if (table !== this.responses) this.grantData(grantee, table, DATA_READ_ACTIONS, DATA_WRITE_ACTIONS, table === this.tiers ? SCAN_ACTIONS : []);
    }
  }

  /**
   * Data-plane actions on one table and its indexes named one by one (no `index/*` wildcard),
   * so the policy lists exactly the resources of this gateway.
   */
  private grantData(grantee: iam.IGrantable, table: dynamodb.TableV2, ...actionLists: readonly string[][]): iam.Grant {
    const indexes = this.indexesOf(table);
    return iam.Grant.addToPrincipal({
      grantee,
      actions: actionLists.flat(),
      resourceArns: [table.tableArn, ...indexes.map((name) => `${table.tableArn}/index/${name}`)],
    });
  }

  /**
   * Writes refused because another transaction held the same item, summed over `period`: on the
   * accounts table, one account's requests contending for its item (docs/SCALE.md).
   */
  public metricTransactionConflicts(table: dynamodb.ITableV2, props: cloudwatch.MetricOptions = {}): cloudwatch.IMetric {
    return table.metric('TransactionConflict', { statistic: 'Sum', ...props });
  }

  /** The global secondary indexes of one of these tables, by name. */
  private indexesOf(table: dynamodb.ITableV2): string[] {
    return table === this.keys ? [KEYS_BY_ACCOUNT_INDEX, KEYS_BY_ID_INDEX] : table === this.sessions ? [SESSIONS_BY_ACCOUNT_INDEX] : [];
  }

  /**
   * Read and write throttle events of one table and of each of its global secondary indexes
   * (CloudWatch reports an index's under the dimension `GlobalSecondaryIndexName`, not in the
   * table's own; a throttled index also throttles the table's writes), summed over `period`.
   */
  public metricThrottles(table: dynamodb.ITableV2, props: cloudwatch.MathExpressionOptions = {}): cloudwatch.IMetric {
    const period = props.period;
    // Ids unique per table, so several tables can share one graph.
    const key = Object.entries(this.all).find(([, t]) => t === table)?.[0] ?? table.node.addr.slice(0, 8);
    const usingMetrics: Record<string, cloudwatch.IMetric> = {
      [`r_${key}`]: table.metric('ReadThrottleEvents', { statistic: 'Sum', period }),
      [`w_${key}`]: table.metric('WriteThrottleEvents', { statistic: 'Sum', period }),
    };
    this.indexesOf(table).forEach((index, i) => {
      const dimensionsMap = { TableName: table.tableName, GlobalSecondaryIndexName: index };
      usingMetrics[`r_${key}_gsi${i}`] = table.metric('ReadThrottleEvents', { statistic: 'Sum', period, dimensionsMap });
      usingMetrics[`w_${key}_gsi${i}`] = table.metric('WriteThrottleEvents', { statistic: 'Sum', period, dimensionsMap });
    });
    return new cloudwatch.MathExpression({
      expression: Object.keys(usingMetrics)
        .map((id) => `FILL(${id}, 0)`)
        .join(' + '),
      usingMetrics,
      label: props.label ?? 'Throttle events',
      period,
    });
  }
}
