import { render } from 'hono/jsx/dom';
import { AccountPanel, KeysTable, LedgerTable, UsageSummary } from '../views/panels';
import { keyNamesOf } from '../views/ledger-filters';
import type { AccountJson, KeyJson, LedgerPageJson, UsageSummaryJson } from '../views/types';
import { installAlerts } from './alerts';

/**
 * The console's browser script (built by esbuild, served as `assets/console.js`). The server
 * renders every page whole; this script posts the sign-in token, sends changes to the JSON API
 * with the CSRF token, and renders the changed panel again with the same components.
 */

type Json = Record<string, unknown>;

const $ = <T extends Element = HTMLElement>(selector: string, root: ParentNode = document) => root.querySelector(selector) as T | null;

const byId = (id: string) => document.getElementById(id) as HTMLElement;

function csrfToken(): string {
  return $('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
}

class ApiError extends Error {}

async function api<T>(method: string, path: string, body?: Json): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', 'x-csrf-token': csrfToken() };
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(`api/${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined, credentials: 'same-origin' });
  const json = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
  if (res.status === 401) {
    // The session ended (signed out elsewhere, expired, revoked): the page says so.
    location.reload();
  }
  if (!res.ok) throw new ApiError(json?.error?.message ?? `The console API answered HTTP ${res.status}.`);
  return json as T;
}

function showError(element: HTMLElement | null, err: unknown): void {
  if (!element) return;
  element.textContent = err instanceof Error ? err.message : String(err);
  element.hidden = false;
}

function clearError(element: HTMLElement | null): void {
  if (element) {
    element.textContent = '';
    element.hidden = true;
  }
}

// ----- sign-in --------------------------------------------------------------------------------

function signIn(): void {
  const form = $<HTMLFormElement>('form[data-form="sign-in"]');
  if (!form) return;
  const token = location.hash.slice(1);
  // The token leaves the address bar (and the history entry) before anything else happens.
  history.replaceState(null, '', location.pathname + location.search);
  if (!token) {
    $('[data-state="working"]', form)!.hidden = true;
    $('[data-state="no-token"]', form)!.hidden = false;
    return;
  }
  (form.elements.namedItem('token') as HTMLInputElement).value = token;
  form.submit();
}

// ----- console --------------------------------------------------------------------------------

const state = {
  range: { from: '', to: '' },
  /** Cursors of the ledger pages shown so far; the last is the current page's (undefined: the first). */
  cursors: [undefined] as Array<string | undefined>,
  revokeKeyId: '',
  /** The ledger's filters (key id, model; empty: all), as the range form last said. */
  filter: { key: '', model: '' },
  keyNames: {} as Record<string, string>,
};

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function refreshKeys(): Promise<void> {
  const keys = await api<{ data: KeyJson[] }>('GET', 'keys');
  state.keyNames = keyNamesOf(keys.data);
  render(<KeysTable keys={keys.data} nowSeconds={nowSeconds()} />, byId('keys-panel'));
}

async function refreshAccount(): Promise<void> {
  const account = await api<AccountJson>('GET', 'account');
  render(<AccountPanel account={account} />, byId('account-panel'));
}

const rangeQuery = () => `from=${encodeURIComponent(state.range.from)}&to=${encodeURIComponent(state.range.to)}`;
const filterQuery = () => `${state.filter.key ? `&key=${encodeURIComponent(state.filter.key)}` : ''}${state.filter.model ? `&model=${encodeURIComponent(state.filter.model)}` : ''}`;

/** Bumped by every range or filter change: an answer to an older one is not drawn over a newer one's. */
let usageView = 0;

async function showLedger(cursor: string | undefined, view = usageView): Promise<void> {
  const page = await api<LedgerPageJson>('GET', `usage/requests?${rangeQuery()}${filterQuery()}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
  if (view !== usageView) return;
  render(<LedgerTable page={page} hasNewer={state.cursors.length > 1} keyNames={state.keyNames} />, byId('ledger-panel'));
  $<HTMLAnchorElement>('a[data-link="csv"]')!.href = `api/usage.csv?${rangeQuery()}${filterQuery()}`;
}

function readRangeForm(form: HTMLFormElement): void {
  const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | null)?.value ?? '';
  state.range = { from: value('from'), to: value('to') };
  state.filter = { key: value('key'), model: value('model') };
}

/** The charts and the ledger (and its CSV link) for the range and filters the form says. */
async function showUsage(): Promise<void> {
  const error = $('[data-error="range"]');
  clearError(error);
  const view = ++usageView;
  try {
    const summary = await api<UsageSummaryJson>('GET', `usage?${rangeQuery()}${filterQuery()}`);
    if (view !== usageView) return;
    render(<UsageSummary summary={summary} />, byId('usage-panel'));
    state.cursors = [undefined];
    await showLedger(undefined, view);
  } catch (err) {
    showError(error, err);
  }
}

function openDialog(id: string): HTMLDialogElement {
  const dialog = $<HTMLDialogElement>(`#${id}`)!;
  for (const e of dialog.querySelectorAll<HTMLElement>('.error')) clearError(e);
  dialog.showModal();
  dialog.querySelector<HTMLElement>('[autofocus]')?.focus();
  return dialog;
}

async function createKey(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const body: Json = {};
  const name = String(data.get('name') ?? '').trim();
  if (name) body.name = name;
  const models = data.getAll('models').map(String);
  if (models.length) body.models = models;
  for (const cap of ['rpm', 'tpm']) {
    const value = String(data.get(cap) ?? '').trim();
    if (value) body[cap] = Number(value);
  }
  const spendCap = String(data.get('monthly_spend_cap_usd') ?? '').trim();
  if (spendCap) body.monthly_spend_cap_usd = spendCap;
  const expires = String(data.get('expires') ?? '');
  if (expires) body.expires_at = `${expires}T23:59:59Z`;
  const created = await api<KeyJson & { key: string }>('POST', 'keys', body);
  form.reset();
  $<HTMLDialogElement>('#create-key')!.close();
  $('#new-key-secret')!.textContent = created.key;
  $('#key-created .copied')!.hidden = true;
  openDialog('key-created');
  await refreshKeys();
}

function openEditKey(button: HTMLButtonElement): void {
  const dialog = openDialog('edit-key');
  const form = $<HTMLFormElement>('form', dialog)!;
  const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
  field('key_id').value = button.dataset.keyId ?? '';
  field('name').value = button.dataset.keyName ?? '';
  field('monthly_spend_cap_usd').value = button.dataset.capUsd ?? '';
  field(button.dataset.focus === 'cap' ? 'monthly_spend_cap_usd' : 'name').focus();
}

async function saveKey(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const cap = String(data.get('monthly_spend_cap_usd') ?? '').trim();
  const id = String(data.get('key_id') ?? '');
  await api('PATCH', `keys/${encodeURIComponent(id)}`, { name: String(data.get('name') ?? '').trim(), monthly_spend_cap_usd: cap ? cap : null });
  await refreshKeys();
  $<HTMLDialogElement>('#edit-key')!.close();
}

async function copyKey(): Promise<void> {
  const code = $('#new-key-secret')!;
  try {
    await navigator.clipboard.writeText(code.textContent ?? '');
  } catch {
    // Without clipboard access, select the key so that Ctrl-C copies it.
    getSelection()?.selectAllChildren(code);
    document.execCommand('copy');
  }
  $('#key-created .copied')!.hidden = false;
}

async function topUp(form: HTMLFormElement): Promise<void> {
  const amount = String(new FormData(form).get('amount_usd') ?? '');
  const returnUrl = new URL(location.href);
  returnUrl.search = '';
  returnUrl.hash = '';
  const checkout = await api<{ url: string }>('POST', 'top-up', { amount_usd: amount, return_url: returnUrl.href });
  location.assign(checkout.url);
}

/** Runs an action with its button disabled, showing a failure next to it. */
async function withButton(button: HTMLButtonElement | null, errorTarget: HTMLElement | null, action: () => Promise<void>): Promise<void> {
  if (button) button.disabled = true;
  clearError(errorTarget);
  try {
    await action();
  } catch (err) {
    showError(errorTarget, err);
  } finally {
    if (button) button.disabled = false;
  }
}

function consolePage(): void {
  const range = $<HTMLFormElement>('form[data-form="range"]')!;
  readRangeForm(range);
  state.keyNames = Object.fromEntries(
    [...document.querySelectorAll<HTMLOptionElement>('select[name="key"] option')].filter((o) => o.value).map((o) => [o.value, o.dataset.label ?? o.value]),
  );
  // A filter applies at once: the charts, the ledger and its CSV link follow it.
  range.addEventListener('change', (event) => {
    if (!(event.target instanceof HTMLSelectElement)) return;
    readRangeForm(range);
    void showUsage();
  });
  // A filter the browser kept across a reload (or history step): the server drew everything unfiltered.
  if (state.filter.key || state.filter.model) void showUsage();

  // The secret leaves the page when its dialog closes: it is shown once.
  $('#key-created')!.addEventListener('close', () => {
    $('#new-key-secret')!.textContent = '';
  });

  document.addEventListener('click', (event) => {
    const button = (event.target as Element).closest<HTMLButtonElement>('[data-action]');
    if (!button) return;
    const dialog = button.closest('dialog');
    switch (button.dataset.action) {
      case 'open-create-key':
        openDialog('create-key');
        break;
      case 'close-dialog':
        dialog?.close();
        break;
      case 'copy-key':
        void copyKey();
        break;
      case 'revoke':
        state.revokeKeyId = button.dataset.keyId ?? '';
        $('#revoke-key-name')!.textContent = button.dataset.keyName ?? state.revokeKeyId;
        openDialog('revoke-key');
        break;
      case 'edit-key':
        openEditKey(button);
        break;
      case 'set-key-status':
        void withButton(button, $('[data-error="keys"]'), async () => {
          await api('PATCH', `keys/${encodeURIComponent(button.dataset.keyId ?? '')}`, { status: button.dataset.status });
          await refreshKeys();
        });
        break;
      case 'confirm-revoke':
        void withButton(button, $('.error', dialog!), async () => {
          await api('DELETE', `keys/${encodeURIComponent(state.revokeKeyId)}`);
          dialog!.close();
          await refreshKeys();
        });
        break;
      case 'ledger-older':
        state.cursors.push(button.dataset.cursor || undefined);
        void withButton(button, $('[data-error="range"]'), () => showLedger(state.cursors.at(-1)));
        break;
      case 'ledger-newer':
        if (state.cursors.length > 1) state.cursors.pop();
        void withButton(button, $('[data-error="range"]'), () => showLedger(state.cursors.at(-1)));
        break;
    }
  });

  // A chart's day, focused by keyboard or tapped, has its values read out in words beside the chart.
  const readOut = (mark: Element | null) => {
    if (!mark?.matches('.day-mark')) return;
    const readout = mark.closest('figure')?.querySelector('.readout');
    if (readout) readout.textContent = mark.getAttribute('aria-label') ?? '';
  };
  document.addEventListener('focusin', (event) => readOut(event.target as Element));
  document.addEventListener('pointerdown', (event) => {
    const mark = (event.target as Element).closest?.('.day-mark');
    if (mark instanceof SVGElement) {
      mark.focus();
      readOut(mark);
    }
  });

  document.addEventListener('submit', (event) => {
    const form = event.target as HTMLFormElement;
    const submit = form.querySelector<HTMLButtonElement>('button[type="submit"]');
    switch (form.dataset.form) {
      case 'create-key':
        event.preventDefault();
        void withButton(submit, $('.error', form), () => createKey(form));
        break;
      case 'range':
        event.preventDefault();
        readRangeForm(form);
        void withButton(submit, null, showUsage);
        break;
      case 'edit-key':
        event.preventDefault();
        void withButton(submit, $('.error', form), () => saveKey(form));
        break;
      case 'top-up':
        event.preventDefault();
        void withButton(submit, $('.error', form), () => topUp(form));
        break;
    }
  });

  installAlerts(api);

  // This minute's use moves while clients call the API: refresh it while the page is in view.
  setInterval(() => {
    if (document.visibilityState === 'visible') void refreshAccount().catch(() => undefined);
  }, 15_000);
}

const page = document.body.dataset.page;
if (page === 'sign-in') signIn();
else if (page === 'console') consolePage();
