import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the stand-in received: Stripe's API takes form-encoded bodies (`line_items[0][quantity]=1`). */
export interface StripeCall {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  form: Record<string, string>;
}

/**
 * A stand-in for Stripe's API on 127.0.0.1: `POST /v1/checkout/sessions` answers a Checkout
 * session as Stripe does (the fields the console reads); `GET /v1/payment_intents/{id}` a
 * PaymentIntent with its latest charge and receipt; `failWith` makes it answer an error.
 */
export async function startStripeStandIn(): Promise<{
  url: string;
  calls: StripeCall[];
  failWith: { status: number; body: unknown } | undefined;
  close(): Promise<void>;
}> {
  const state = { failWith: undefined as { status: number; body: unknown } | undefined };
  const calls: StripeCall[] = [];
  let seq = 0;
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(parts).toString('utf8')));
      calls.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, form });
      res.setHeader('content-type', 'application/json');
      res.setHeader('request-id', `req_standin_${calls.length}`);
      if (state.failWith) {
        res.writeHead(state.failWith.status).end(JSON.stringify(state.failWith.body));
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/checkout/sessions') {
        const id = `cs_test_standin_${++seq}`;
        const cents = Number(form['line_items[0][price_data][unit_amount]']);
        res.writeHead(200).end(
          JSON.stringify({
            id,
            object: 'checkout.session',
            mode: form.mode,
            url: `https://checkout.stripe.test/c/pay/${id}`,
            client_reference_id: form.client_reference_id,
            metadata: { itapi_account_id: form['metadata[itapi_account_id]'] },
            amount_subtotal: cents,
            amount_total: cents,
            currency: 'usd',
            payment_status: 'unpaid',
            status: 'open',
            success_url: form.success_url,
            cancel_url: form.cancel_url,
          }),
        );
        return;
      }
      const intent = /^\/v1\/payment_intents\/([A-Za-z0-9_]+)(\?|$)/.exec(req.url ?? '');
      if (req.method === 'GET' && intent) {
        // A PaymentIntent with its latest charge expanded (`expand[]=latest_charge`), as Stripe answers it.
        const id = intent[1];
        res.writeHead(200).end(
          JSON.stringify({
            id,
            object: 'payment_intent',
            status: 'succeeded',
            latest_charge: { id: `ch_for_${id}`, object: 'charge', payment_intent: id, receipt_url: `https://pay.stripe.test/receipts/${id}` },
          }),
        );
        return;
      }
      res.writeHead(404).end(JSON.stringify({ error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${req.url})` } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
