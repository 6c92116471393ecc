// The Lambda entry's event conversion (lambda/entry/lambda-http.ts): a JSON API POST's bytes are
// handed beside a Request built without a body (issue 22: no Web body built and read on the way
// to the upstream call); every other request carries its body in the Request, as before.
import { requestFromEvent } from '../../../lambda/entry/lambda-http';
import { functionUrlEvent, restApiEvent } from '../../support/awslambda-standin';

describe.each([
  ['Function URL (payload v2)', functionUrlEvent],
  ['REST API (payload v1)', restApiEvent],
])('requestFromEvent, %s', (_name, makeEvent) => {
  const json = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'héllo' }] });

  it('hands a JSON API body beside a Request that has none, its length declared', () => {
    const { request, body } = requestFromEvent(makeEvent('POST', '/v1/chat/completions', { 'content-type': 'application/json' }, json) as never);
    expect(request.body).toBeNull();
    expect(request.method).toBe('POST');
    expect(new URL(request.url).pathname).toBe('/v1/chat/completions');
    expect(body?.toString('utf8')).toBe(json);
    expect(request.headers.get('content-length')).toBe(String(Buffer.byteLength(json)));
  });

  it('hands an empty body beside a JSON API POST that came without one', () => {
    const { request, body } = requestFromEvent(makeEvent('POST', '/v1/embeddings', {}) as never);
    expect(request.body).toBeNull();
    expect(body?.byteLength).toBe(0);
  });

  it('decodes a base64 body, as the runtime hands a binary-safe one', () => {
    const event = { ...(makeEvent('POST', '/v1/chat/completions', { 'content-type': 'application/json' }) as object), body: Buffer.from(json).toString('base64'), isBase64Encoded: true };
    const { request, body } = requestFromEvent(event as never);
    expect(body?.toString('utf8')).toBe(json);
    expect(request.headers.get('content-length')).toBe(String(Buffer.byteLength(json)));
  });

  it('decides on the path as routed: a /v1/.. path that leads to the console keeps its body', async () => {
    const form = 'token=abc';
    const { request, body } = requestFromEvent(makeEvent('POST', '/v1/../console/session', { 'content-type': 'application/x-www-form-urlencoded' }, form) as never);
    expect(new URL(request.url).pathname).toBe('/console/session');
    expect(body).toBeUndefined();
    expect(await request.text()).toBe(form);
  });

  it('keeps any other request’s body in the Request (a console form)', async () => {
    const form = 'token=abc&next=%2Fconsole';
    const { request, body } = requestFromEvent(makeEvent('POST', '/console/session', { 'content-type': 'application/x-www-form-urlencoded' }, form) as never);
    expect(body).toBeUndefined();
    expect(await request.text()).toBe(form);
  });

  it('gives a GET no body at all', () => {
    const { request, body } = requestFromEvent(makeEvent('GET', '/v1/models', {}) as never);
    expect(request.body).toBeNull();
    expect(body).toBeUndefined();
  });
});
