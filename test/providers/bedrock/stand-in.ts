import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { bedrockAnswerProvider, type BedrockClientSettings } from '../../../lambda/providers/bedrock';
import type { StandIn, StandInReply } from '../stand-in';
import { eventFrame, exceptionFrame, type BedrockEvent } from './transcripts';

/** A client that signs with static test credentials, so the SDK never probes instance metadata. */
export function testBedrockClient(settings: BedrockClientSettings): BedrockRuntimeClient {
  return new BedrockRuntimeClient({
    region: settings.region,
    endpoint: settings.endpoint,
    credentials: { accessKeyId: 'AKIDTESTSTANDIN', secretAccessKey: 'test-secret' },
    maxAttempts: 1,
  });
}

/** Bedrock as the gateway calls it (the canonical model), against the stand-in. */
export const testBedrockProvider = () => bedrockAnswerProvider({ createClient: testBedrockClient });

export function eventStreamReply(events: BedrockEvent[], extra: Uint8Array[] = [], gapMs = 0): StandInReply {
  return {
    status: 200,
    headers: { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'b7f1c6a2-0000-4000-8000-000000000001' },
    parts: [...events.map(eventFrame), ...extra],
    gapMs,
  };
}

export { exceptionFrame };

export function jsonReply(body: unknown): StandInReply {
  return {
    status: 200,
    headers: { 'content-type': 'application/json', 'x-amzn-requestid': 'b7f1c6a2-0000-4000-8000-000000000002' },
    parts: [JSON.stringify(body)],
  };
}

/** A modeled error as restJson1 services answer it: the status, x-amzn-errortype and a JSON message. */
export function errorReply(status: number, errorType: string, message: string): StandInReply {
  return {
    status,
    headers: { 'content-type': 'application/json', 'x-amzn-errortype': `${errorType}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': 'err-1' },
    parts: [JSON.stringify({ message })],
  };
}

/** Answers Converse at /model/{id}/converse and ConverseStream at /model/{id}/converse-stream. */
export function route(standIn: StandIn, replies: { converse?: StandInReply; stream?: StandInReply }): void {
  standIn.handler = (request) => {
    if (/^\/model\/[^/]+\/converse-stream$/.test(request.path) && replies.stream) return replies.stream;
    if (/^\/model\/[^/]+\/converse$/.test(request.path) && replies.converse) return replies.converse;
    return { status: 404, headers: { 'content-type': 'application/json' }, parts: [JSON.stringify({ message: `no stand-in route for ${request.path}` })] };
  };
}
