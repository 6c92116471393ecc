import { createHash, createHmac, createSecretKey, hash, type KeyObject } from 'node:crypto';

/**
 * AWS Signature Version 4 for one kind of request: a POST of a JSON body to `/` with no query,
 * which is every DynamoDB call. The same canonical request, string to sign and signature as the
 * SDK's `@smithy/signature-v4` (test/store/dynamo-client.test.ts checks it against the SDK), in
 * a few lines of `node:crypto` instead of the 140 KB of `@smithy/core` that signer now pulls into
 * the bundle, synchronous hashing, and the day's signing key derived once (docs/BENCHMARKS.md).
 */
/** The credentials the AWS SDK's providers resolve to (the same shape as its `AwsCredentialIdentity`). */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export type CredentialsProvider = () => Promise<AwsCredentials>;

export type PostSigner = (host: string, headers: Record<string, string>, body: string) => Promise<Record<string, string>>;

export function postSigner(credentials: CredentialsProvider, region: string, service: string, now: () => Date = () => new Date()): PostSigner {
  // The day's signing key as a KeyObject: on Node 24 an HMAC keyed by a Buffer costs about 10 µs
  // (the key converted on every call), by a KeyObject about 1.5 (docs/BENCHMARKS.md, eighteenth pass).
  let cached: { day: string; secret: string; key: KeyObject } | undefined;
  return async (host, headers, body) => {
    const id = await credentials();
    const iso = now().toISOString();
    const amzDate = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
    const day = amzDate.slice(0, 8);
    const payloadHash = sha256Hex(body);
    // The payload's hash as a header too, as the SDK's signer sends it (applyChecksum).
    const all: Record<string, string> = { ...headers, host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
    if (id.sessionToken) all['x-amz-security-token'] = id.sessionToken;
    const names = Object.keys(all)
      .map((n) => n.toLowerCase())
      .sort();
    const lower: Record<string, string> = {};
    for (const [n, v] of Object.entries(all)) lower[n.toLowerCase()] = v.trim().replace(/\s+/g, ' ');
    const signedHeaders = names.join(';');
    let canonical = 'POST\n/\n\n';
    for (const n of names) canonical += `${n}:${lower[n]}\n`;
    canonical += `\n${signedHeaders}\n${payloadHash}`;
    const scope = `${day}/${region}/${service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`;
    if (!cached || cached.day !== day || cached.secret !== id.secretAccessKey) {
      const kDate = hmac(`AWS4${id.secretAccessKey}`, day);
      cached = { day, secret: id.secretAccessKey, key: createSecretKey(hmac(hmac(hmac(kDate, region), service), 'aws4_request')) };
    }
    const signature = createHmac('sha256', cached.key).update(toSign).digest('hex');
    return { ...all, authorization: `AWS4-HMAC-SHA256 Credential=${id.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
  };
}

/** Node's one-shot `crypto.hash` where there is one (Node 20.12 and later), as `hashApiKey`. */
function sha256Hex(text: string): string {
  return typeof hash === 'function' ? hash('sha256', text, 'hex') : createHash('sha256').update(text, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
