import { randomBytes } from 'node:crypto';
import type { CatalogFile } from '../../lambda/catalog';
import type { MetricsSink } from '../../lambda/observability/metrics';
import type { TableNames } from '../../lambda/store/tables';
import { sleep } from '../reliability/support';
import { completionBody, startUpstream, streamEvents } from './upstream';

/**
 * What the tests of speculative upstream calls share (test/money/overlapped-admission.test.ts,
 * test/auth/key-ahead.test.ts): a stand-in that records each call and sees the gateway cut it, the
 * model `m` routed to it, and the metric of cancelled calls.
 */

/** $100 per million input tokens (100 µUSD a token), $1,000 per million output (1,000 µUSD a token); 4,000 output tokens at most. */
export function speculationCatalog(): CatalogFile {
  return {
    models: {
      m: {
        owned_by: 'test',
        pricing: { input_per_mtok: 100, output_per_mtok: 1000 },
        context_window: 100_000,
        max_output_tokens: 4_000,
        routes: [{ provider: 'openai-compatible', base_url: 'http://placeholder/v1', model: 'up' }],
      },
    },
  };
}

/** One call that reached the stand-in, named by its first message's text. */
export interface Arrival {
  tag: string;
  maxTokens: number | undefined;
  arrivedAtMs: number;
  answeredAtMs?: number;
  /** The gateway cut the socket before the stand-in answered. */
  closedUnanswered: boolean;
}

export interface RecordingUpstream {
  url: string;
  arrivals: Arrival[];
  arrivalsOf(tag: string): Arrival[];
  /** How long the stand-in takes before it answers (it stops waiting when the gateway cuts the call). */
  answerAfterMs: number;
  /** The usage the next answers report, for the calls whose tag is given (10 + 5 for the others). */
  usageFor: Map<string, { prompt_tokens: number; completion_tokens: number; total_tokens: number }>;
  close(): Promise<void>;
}

/**
 * An OpenAI-compatible stand-in that records each call and answers after `answerAfterMs`: JSON
 * ("hello there"), or a stream of five pieces (the first, then the rest 30 ms later), usage 10 + 5.
 */
export async function recordingUpstream(): Promise<RecordingUpstream> {
  const arrivals: Arrival[] = [];
  const recorder: RecordingUpstream = {
    url: '',
    arrivals,
    arrivalsOf: (tag) => arrivals.filter((a) => a.tag === tag),
    answerAfterMs: 0,
    usageFor: new Map(),
    close: async () => undefined,
  };
  const upstream = await startUpstream(async (_req, body, res) => {
    // A Messages request reaches this OpenAI-compatible stand-in with its text in a content part.
    const content = body.messages[0].content;
    const arrival: Arrival = { tag: typeof content === 'string' ? content : content[0].text, maxTokens: body.max_tokens, arrivedAtMs: Date.now(), closedUnanswered: false };
    arrivals.push(arrival);
    res.on('close', () => {
      if (!res.writableEnded) arrival.closedUnanswered = true;
    });
    for (let waited = 0; waited < recorder.answerAfterMs && !res.destroyed; waited += 20) await sleep(20);
    if (res.destroyed) return;
    arrival.answeredAtMs = Date.now();
    const usage = recorder.usageFor.get(arrival.tag) ?? { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
    if (body.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const events = streamEvents('up', ['one ', 'two ', 'three ', 'four ', 'five'], usage);
      res.write(events[0]);
      await sleep(30);
      res.end(events.slice(1).join(''));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(completionBody('up', 'hello there', usage)));
    }
  });
  recorder.url = upstream.url;
  recorder.close = upstream.close;
  return recorder;
}

/** A metrics sink that keeps only the reasons of cancelled speculative calls. */
export function cancellationMetrics(cancellations: string[]): MetricsSink {
  return {
    request: () => undefined,
    upstreamAttempt: () => undefined,
    cost: () => undefined,
    speculativeCallCancelled: (reason) => void cancellations.push(reason),
  };
}

/** A fresh set of table names under `prefix`. */
export function freshTables(prefix: string): TableNames {
  const suffix = randomBytes(6).toString('hex');
  const name = (table: string) => `${prefix}-${table}-${suffix}`;
  return {
    keys: name('keys'),
    tiers: name('tiers'),
    accounts: name('accounts'),
    usage: name('usage'),
    holds: name('holds'),
    sessions: name('sessions'),
    responses: name('responses'),
    rollups: name('rollups'),
  };
}

export const uniqueTag = (): string => `prompt ${randomBytes(6).toString('hex')}`;

/** Waits (up to 2 s) for `condition`. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(10);
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}
