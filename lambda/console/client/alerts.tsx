import { render } from 'hono/jsx/dom';
import { AlertsPanel } from '../views/alerts-panel';
import type { AccountJson } from '../views/types';

/** The low-balance alert panel's behaviour: save, reveal the signing secret, remove. */

type Api = <T>(method: string, path: string, body?: Record<string, unknown>) => Promise<T>;

function showSecret(secret: string): void {
  const box = document.querySelector<HTMLElement>('.alert-secret');
  const code = document.getElementById('alert-secret');
  if (!box || !code) return;
  code.textContent = secret;
  box.hidden = false;
}

function setError(form: Element | null, err: unknown): void {
  const e = form?.querySelector<HTMLElement>('.error');
  if (!e) return;
  e.textContent = err ? (err instanceof Error ? err.message : String(err)) : '';
  e.hidden = !err;
}

async function redraw(api: Api): Promise<void> {
  const account = await api<AccountJson>('GET', 'account');
  const panel = document.getElementById('alerts-panel');
  if (panel) render(<AlertsPanel alert={account.low_balance_alert} />, panel);
}

export function installAlerts(api: Api): void {
  document.addEventListener('submit', (event) => {
    const form = event.target as HTMLFormElement;
    if (form.dataset.form !== 'alerts') return;
    event.preventDefault();
    const data = new FormData(form);
    const text = (name: string) => String(data.get(name) ?? '').trim() || null;
    const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
    if (button) button.disabled = true;
    setError(form, undefined);
    void api<{ secret: string }>('PUT', 'alerts', { threshold_usd: text('threshold_usd') ?? '', webhook_url: text('webhook_url'), email: text('email') })
      .then(async (saved) => {
        await redraw(api);
        // Shown right after saving; later behind "Reveal secret".
        showSecret(saved.secret);
      })
      .catch((err: unknown) => setError(form, err))
      .finally(() => {
        if (button) button.disabled = false;
      });
  });
  document.addEventListener('click', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('[data-action]');
    const form = button?.closest('form') ?? null;
    if (button?.dataset.action === 'reveal-alert-secret') {
      void api<{ secret: string }>('POST', 'alerts/secret', {}).then((r) => showSecret(r.secret), (err: unknown) => setError(form, err));
    } else if (button?.dataset.action === 'remove-alert') {
      void api('DELETE', 'alerts').then(() => redraw(api), (err: unknown) => setError(form, err));
    }
  });
}
