import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamHandler = (req: IncomingMessage, body: any, res: ServerResponse) => void | Promise<void>;

/** An OpenAI-compatible stand-in on 127.0.0.1 for end-to-end tests. */
export async function startUpstream(handler: UpstreamHandler): Promise<{ url: string; server: Server; requests: any[]; texts: string[]; close(): Promise<void> }> {
  const requests: any[] = [];
  /** Each request's body as the bytes came (UTF-8). */
  const texts: string[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      const body = text ? JSON.parse(text) : undefined;
      texts.push(text);
      requests.push(body);
      void handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    server,
    requests,
    texts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A chat.completion as OpenAI sends it. */
export function completionBody(model: string, content: string, usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }) {
  return {
    id: 'chatcmpl-upstream',
    object: 'chat.completion',
    created: 1735689600,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage,
  };
}

/** SSE lines of a streamed answer, with the usage chunk OpenAI sends for include_usage. */
export function streamEvents(model: string, pieces: string[], usage = { prompt_tokens: 10, completion_tokens: pieces.length, total_tokens: 10 + pieces.length }): string[] {
  const base = { id: 'chatcmpl-upstream', object: 'chat.completion.chunk', created: 1735689600, model };
  const events = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
    ...pieces.map((p) => ({ ...base, choices: [{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }] })),
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] },
    { ...base, choices: [], usage },
  ];
  return [...events.map((e) => `data: ${JSON.stringify(e)}\n\n`), 'data: [DONE]\n\n'];
}
