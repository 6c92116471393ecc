import { dollars } from './format';
import type { AccountJson } from './types';

/**
 * The low-balance alert's panel: threshold, webhook URL and e-mail, whether it is armed, and the
 * signing secret (shown right after saving, else behind "Reveal secret"). No handlers: the browser
 * script listens for `data-form="alerts"` and the `data-action` buttons.
 */
export function AlertsPanel(props: { alert: AccountJson['low_balance_alert'] }) {
  const a = props.alert;
  return (
    <section class="panel alerts" aria-labelledby="alerts-title">
      <h2 id="alerts-title">Low-balance alert</h2>
      <form class="alerts-form" data-form="alerts">
        <label for="alert-threshold">Low balance threshold (USD)</label>
        <input id="alert-threshold" type="number" name="threshold_usd" min="0.01" step="0.01" inputmode="decimal" value={a ? String(a.threshold_usd) : ''} required />
        <label for="alert-webhook">Webhook URL</label>
        <input id="alert-webhook" type="url" name="webhook_url" placeholder="https://example.com/hooks/itapi" value={a?.webhook_url ?? ''} />
        <label for="alert-email">E-mail (optional)</label>
        <input id="alert-email" type="email" name="email" value={a?.email ?? ''} />
        <p class="hint">
          When the balance falls below the threshold, itapi POSTs one <code>balance.low</code> event to the webhook (and mails the address), signed in{' '}
          <code>itapi-signature</code>. It fires again only after a top-up brings the balance back above the threshold.
        </p>
        <p class="alert-state" data-field="alert-state">
          {a ? (a.armed ? `Armed: alerts below ${dollars(a.threshold_micro_usd)}.` : `Fired: the balance is below ${dollars(a.threshold_micro_usd)}; re-arms after a top-up above it.`) : 'No alert set.'}
        </p>
        <div class="alert-secret" hidden>
          <p>Signing secret (HMAC-SHA256 key for <code>itapi-signature</code>; keep it in your receiver):</p>
          <code id="alert-secret" class="secret" />
        </div>
        <p class="dialog-buttons">
          <button type="submit" class="primary">
            Save alert
          </button>
          {a ? (
            <>
              <button type="button" data-action="reveal-alert-secret">
                Reveal secret
              </button>
              <button type="button" data-action="remove-alert">
                Remove alert
              </button>
            </>
          ) : null}
        </p>
        <p class="error" role="alert" hidden />
      </form>
    </section>
  );
}
