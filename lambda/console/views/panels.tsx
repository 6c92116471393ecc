import { count, dateTime, dollars, exactDollars, limit } from './format';
import type { AccountJson, LedgerPageJson, TopUpOptionsJson, UsageSummaryJson } from './types';
import { ChartLegend, UsageChart } from './usage-chart';

/**
 * The console's panels, as pure functions of the JSON API's answers: the server renders them into
 * the page, and the browser script renders them again (Hono's DOM renderer) after a change. They
 * carry no handlers; buttons name their action in `data-action` and the script listens on the page.
 */

export function AccountPanel(props: { account: AccountJson }) {
  const a = props.account;
  const m = a.usage_this_minute;
  return (
    <section class="panel account" aria-labelledby="account-title">
      <h2 id="account-title">Balance</h2>
      <p class="balance" data-balance-micro-usd={a.balance_micro_usd} title={exactDollars(a.balance_micro_usd)}>
        {dollars(a.balance_micro_usd)}
      </p>
      {a.owed_micro_usd > 0 ? (
        <p class="owed" data-field="owed" data-owed-micro-usd={a.owed_micro_usd} title={exactDollars(a.owed_micro_usd)}>
          Owed: <strong>{dollars(a.owed_micro_usd)}</strong> (refunds or disputes took back more than the balance held; the next top-up pays it first)
        </p>
      ) : null}
      <dl class="facts">
        <dt>Tier</dt>
        <dd class="tier">{a.tier}</dd>
        <dt>Status</dt>
        <dd>{a.status}</dd>
        <dt>Requests a minute</dt>
        <dd>{limit(a.limits.rpm)}</dd>
        <dt>Tokens a minute</dt>
        <dd>{limit(a.limits.tpm)}</dd>
        <dt>This minute</dt>
        <dd class="minute">
          {count(m.requests)} requests, {count(m.tokens)} tokens
          {m.remaining_requests !== null || m.remaining_tokens !== null
            ? ` (${m.remaining_requests === null ? 'any number of' : count(m.remaining_requests)} requests and ${
                m.remaining_tokens === null ? 'any number of' : count(m.remaining_tokens)
              } tokens left)`
            : ''}
        </dd>
      </dl>
      <p class="hint">Limits are shared by all the account's keys.</p>
    </section>
  );
}

export { KeysTable } from './keys';

export function UsageSummary(props: { summary: UsageSummaryJson }) {
  const s = props.summary;
  const t = s.totals;
  return (
    <div class="usage-summary" data-from={s.from} data-to={s.to} data-key={s.key ?? ''} data-model={s.model ?? ''}>
      <p class="totals">
        <strong>{dollars(t.cost_micro_usd)}</strong> for <strong>{count(t.requests)}</strong> requests and{' '}
        <strong>{count(t.total_tokens)}</strong> tokens ({count(t.prompt_tokens)} prompt, {count(t.completion_tokens)} completion) from {s.from} to {s.to}
        {t.failed_requests ? `; ${count(t.failed_requests)} failed` : ''}.
      </p>
      <ChartLegend models={s.models} />
      <div class="charts">
        <UsageChart summary={s} metric="cost" title="Spend per day" />
        <UsageChart summary={s} metric="tokens" title="Tokens per day" />
      </div>
    </div>
  );
}

export function LedgerTable(props: { page: LedgerPageJson; hasNewer: boolean; keyNames?: Record<string, string> }) {
  const { page } = props;
  return (
    <div class="ledger" data-from={page.from} data-to={page.to}>
      {page.data.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Request id</th>
              <th scope="col">Key</th>
              <th scope="col">Model</th>
              <th scope="col">Route</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">
                Prompt
              </th>
              <th scope="col" class="num">
                Completion
              </th>
              <th scope="col" class="num">
                Cost
              </th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((r) => (
              <tr data-request-id={r.id}>
                <td class="nowrap">{dateTime(Math.floor(r.at_ms / 1000)).replace(' UTC', '')}</td>
                <td>
                  <code>{r.id}</code>
                </td>
                <td class="ledger-key" data-key-id={r.key_id ?? ''}>{r.key_id === null ? '—' : props.keyNames?.[r.key_id] || r.key_id}</td>
                <td>{r.model ?? '—'}</td>
                <td>{r.route ?? '—'}</td>
                <td>{r.status === null ? '—' : `${r.status}${r.error_code ? ` ${r.error_code}` : ''}`}</td>
                <td class="num">{count(r.prompt_tokens)}</td>
                <td class="num">{count(r.completion_tokens)}</td>
                <td class="num">{exactDollars(r.cost_micro_usd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="empty">No requests in this range.</p>
      )}
      <nav class="pager" aria-label="Ledger pages">
        <button type="button" data-action="ledger-newer" disabled={!props.hasNewer}>
          Newer
        </button>
        <button type="button" data-action="ledger-older" data-cursor={page.next_cursor ?? ''} disabled={!page.next_cursor}>
          Older
        </button>
      </nav>
    </div>
  );
}

export function TopUpPanel(props: { options: TopUpOptionsJson; accountId: string }) {
  const o = props.options;
  return (
    <section class="panel top-up" aria-labelledby="top-up-title">
      <h2 id="top-up-title">Top up</h2>
      {o.enabled ? (
        <form class="top-up-form" data-form="top-up">
          <label>
            Amount in US dollars
            <input type="number" name="amount_usd" min={o.min_usd} max={o.max_usd} step="0.01" value={String(Math.max(o.min_usd, Math.min(20, o.max_usd)))} required />
          </label>
          <button type="submit">Top up</button>
          <p class="hint">
            Between {dollars(o.min_usd * 1_000_000)} and {dollars(o.max_usd * 1_000_000)}, paid by card on Stripe Checkout. The credits appear here once Stripe
            confirms the payment.
          </p>
          <p class="error" role="alert" hidden />
        </form>
      ) : (
        <p class="hint">
          Card payments are not set up on this gateway. To add credits, ask your operator to run{' '}
          <code>itapi credits add {props.accountId} --amount USD --reference REF</code>.
        </p>
      )}
      {o.recent.length ? (
        <>
          <h3>Recent top-ups</h3>
          <ul class="recent-top-ups">
            {o.recent.map((t) => (
              <li>
                {dateTime(Math.floor(t.at_ms / 1000))}: <strong>{dollars(t.amount_micro_usd)}</strong> <code>{t.reference}</code>
                {t.owed_paid_micro_usd > 0 ? (
                  <span class="owed-paid" data-owed-paid-micro-usd={t.owed_paid_micro_usd}>
                    {' '}
                    ({dollars(t.owed_paid_micro_usd)} of it paid what was owed)
                  </span>
                ) : null}
                {t.receipt_url ? (
                  <>
                    {' '}
                    <a class="receipt" href={t.receipt_url} target="_blank" rel="noopener noreferrer">
                      Receipt
                    </a>
                  </>
                ) : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
}
