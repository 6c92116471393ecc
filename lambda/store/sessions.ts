import { randomBytes } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type Dynamo, isDynamoError } from './dynamo';
import { SESSIONS_BY_ACCOUNT_INDEX } from './tables';

/**
 * The console's sign-in links and sessions, one item each, addressed by the SHA-256 of the secret
 * the browser holds (the secret itself is never stored). `expires_at` (unix seconds) is the
 * table's TTL; reads check `expiresAtMs` too, since DynamoDB deletes expired items only eventually.
 */
export type ConsoleGrantKind = 'link' | 'session';

export interface ConsoleGrant {
  kind: ConsoleGrantKind;
  /** SHA-256 (hex) of the link token or session id. */
  hash: string;
  accountId: string;
  /** How the holder proved who they are: `link` today; an OIDC provider would add its own. */
  method: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** Links only: when the link was used (a used link signs no one in again). */
  usedAtMs?: number;
}

type Item = Record<string, AttributeValue>;

const itemId = (kind: ConsoleGrantKind, hash: string) => `${kind}#${hash}`;

function toItem(g: ConsoleGrant): Item {
  const item: Item = {
    id: { S: itemId(g.kind, g.hash) },
    kind: { S: g.kind },
    account_id: { S: g.accountId },
    method: { S: g.method },
    created_at_ms: { N: String(g.createdAtMs) },
    expires_at_ms: { N: String(g.expiresAtMs) },
    expires_at: { N: String(Math.ceil(g.expiresAtMs / 1000)) },
  };
  if (g.usedAtMs !== undefined) item.used_at_ms = { N: String(g.usedAtMs) };
  return item;
}

function fromItem(item: Item): ConsoleGrant {
  const [kind, hash] = item.id.S!.split('#') as [ConsoleGrantKind, string];
  const grant: ConsoleGrant = {
    kind,
    hash,
    accountId: item.account_id.S!,
    method: item.method?.S ?? 'link',
    createdAtMs: Number(item.created_at_ms?.N ?? 0),
    expiresAtMs: Number(item.expires_at_ms?.N ?? 0),
  };
  if (item.used_at_ms?.N !== undefined) grant.usedAtMs = Number(item.used_at_ms.N);
  return grant;
}

/** The sessions table: console sign-in links and sessions. */
export class SessionsStore {
  constructor(
    private readonly client: Dynamo,
    readonly tableName: string,
  ) {}

  /**
   * Stores a new link or session. Unconditional: its id is the hash of 256 random bits, and a put
   * resent after a lost answer must land again rather than fail on the item it wrote.
   */
  async put(grant: ConsoleGrant): Promise<void> {
    await this.client.call('PutItem', { TableName: this.tableName, Item: toItem(grant) });
  }

  /**
   * Marks an unused, unexpired link used and returns it, in one conditional write: of two
   * concurrent uses exactly one gets the link. Undefined when the link is unknown, used or expired.
   * The write carries a nonce of its own, so when its answer is lost and the client resends it,
   * the failed condition that comes back shows the link was used by this very call.
   */
  async useLink(hash: string, nowMs: number): Promise<ConsoleGrant | undefined> {
    const nonce = randomBytes(12).toString('base64url');
    try {
      const out = await this.client.call('UpdateItem', {
        TableName: this.tableName,
        Key: { id: { S: itemId('link', hash) } },
        UpdateExpression: 'SET used_at_ms = :now, used_by = :nonce',
        ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(used_at_ms) AND expires_at_ms > :now',
        ExpressionAttributeValues: { ':now': { N: String(nowMs) }, ':nonce': { S: nonce } },
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
      return out.Attributes ? fromItem(out.Attributes) : undefined;
    } catch (err) {
      if (!isDynamoError(err, 'ConditionalCheckFailedException')) throw err;
      return err.Item?.used_by?.S === nonce ? fromItem(err.Item) : undefined;
    }
  }

  /** An unused, unexpired link, without using it (to ask a signed-in holder before switching accounts). */
  async getLink(hash: string, nowMs: number): Promise<ConsoleGrant | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { id: { S: itemId('link', hash) } }, ConsistentRead: true });
    if (!out.Item) return undefined;
    const grant = fromItem(out.Item);
    return grant.kind === 'link' && grant.usedAtMs === undefined && grant.expiresAtMs > nowMs ? grant : undefined;
  }

  /** A live session, or undefined when it is unknown, ended or expired. */
  async getSession(hash: string, nowMs: number): Promise<ConsoleGrant | undefined> {
    const out = await this.client.call('GetItem', { TableName: this.tableName, Key: { id: { S: itemId('session', hash) } }, ConsistentRead: true });
    if (!out.Item) return undefined;
    const grant = fromItem(out.Item);
    return grant.kind === 'session' && grant.expiresAtMs > nowMs ? grant : undefined;
  }

  /** Ends one session (sign-out). */
  async deleteSession(hash: string): Promise<void> {
    await this.client.call('DeleteItem', { TableName: this.tableName, Key: { id: { S: itemId('session', hash) } } });
  }

  /** Ends every session of an account and voids its unused links; returns how many items went. */
  async revokeAccount(accountId: string): Promise<number> {
    let removed = 0;
    let start: Item | undefined;
    do {
      const page = await this.client.call('Query', {
          TableName: this.tableName,
          IndexName: SESSIONS_BY_ACCOUNT_INDEX,
          KeyConditionExpression: 'account_id = :a',
          ExpressionAttributeValues: { ':a': { S: accountId } },
          ExclusiveStartKey: start,
        },
      );
      for (const item of page.Items ?? []) {
        await this.client.call('DeleteItem', { TableName: this.tableName, Key: { id: item.id } });
        removed++;
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return removed;
  }
}
