import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { AwsCredentials } from '../store/sigv4';

/**
 * SigV4 for the admin API behind API Gateway (IAM auth). Uses @smithy/signature-v4 and the SDK's
 * default credential chain (@aws-sdk/credential-provider-node), both loaded only when signing, so
 * the local CLI never loads the AWS SDK. SHA-256 comes from node:crypto (no @aws-crypto/sha256-js).
 */

export type { AwsCredentials };

/** `https://abc123.execute-api.eu-west-1.amazonaws.com/prod/admin` → `eu-west-1`. */
export function apiGatewayRegion(url: URL): string | undefined {
  return /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/i.exec(url.hostname)?.[1];
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

const bytes = (data: SourceData): Buffer =>
  typeof data === 'string'
    ? Buffer.from(data, 'utf8')
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** The `Checksum` the signer wants: SHA-256, or HMAC-SHA-256 when given a secret. */
export class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret !== undefined ? createHmac('sha256', bytes(this.secret)) : createHash('sha256');
  }
  update(data: Uint8Array): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

export interface SignInput {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
  region: string;
  /** Static credentials; else the SDK's default chain (env, profile, SSO, IMDS…). */
  credentials?: AwsCredentials;
  signingDate?: Date;
}

/** Returns the headers to send (including `authorization` and `x-amz-date`), without `host`. */
export async function signRequest(input: SignInput): Promise<Record<string, string>> {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  const credentials = input.credentials ?? (await import('@aws-sdk/credential-provider-node')).defaultProvider();
  const signer = new SignatureV4({ service: 'execute-api', region: input.region, credentials, sha256: NodeSha256 });
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of input.url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signed = await signer.sign(
    {
      method: input.method,
      protocol: input.url.protocol,
      hostname: input.url.hostname,
      port: input.url.port ? Number(input.url.port) : undefined,
      path: input.url.pathname,
      query,
      headers: { ...input.headers, host: input.url.host },
      body: input.body,
    },
    { signingDate: input.signingDate },
  );
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') out[k] = v;
  return out;
}
