import { readJsonBody } from '../../lambda/contract/json-body';
import { GatewayError } from '../../lambda/contract/errors';

/** A Web Request as the Lambda entry builds one: the whole body in memory, headers as the client sent them. */
const request = (body: string, headers: Record<string, string>) => new Request('http://gateway.test/v1/chat/completions', { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

describe('readJsonBody (issue 22: a body of declared length is read whole)', () => {
  it('reads a body whose declared length is within the limit', async () => {
    const text = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'héllo' }] });
    await expect(readJsonBody(request(text, { 'content-length': String(Buffer.byteLength(text)) }), 1024)).resolves.toEqual(JSON.parse(text));
  });

  it('refuses with 413 (and closes) a body larger than the limit whose declared length says otherwise', async () => {
    const text = JSON.stringify({ pad: 'x'.repeat(2000) });
    const err = await readJsonBody(request(text, { 'content-length': '10' }), 1024).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(413);
    expect((err as GatewayError).headers.connection).toBe('close');
  });

  it('still reads an undeclared length through the stream, and refuses it past the limit', async () => {
    const small = '{"a":1}';
    await expect(readJsonBody(request(small, {}), 1024)).resolves.toEqual({ a: 1 });
    const err = await readJsonBody(request(JSON.stringify({ pad: 'x'.repeat(2000) }), {}), 1024).catch((e: unknown) => e);
    expect((err as GatewayError).status).toBe(413);
  });
});
