import { count, dateTime, day, dollars } from './format';
import type { KeyJson } from './types';

/**
 * The account's keys: each with its last use, its spend (last 30 days, this month) and its monthly
 * spend cap, and buttons to rename, disable or enable, cap and revoke it. Revoked keys fold away
 * under "Revoked keys (n)". Pure, like the other panels: the server renders it, the script again.
 */

function keyCaps(k: KeyJson): string {
  const caps = [k.rpm === null ? '' : `${count(k.rpm)} requests`, k.tpm === null ? '' : `${count(k.tpm)} tokens`].filter(Boolean);
  return caps.length ? caps.join(', ') : 'the account’s';
}

function keyState(k: KeyJson, nowSeconds: number): string {
  if (k.status !== 'active') return k.status;
  return k.expires_at !== null && k.expires_at <= nowSeconds ? 'expired' : 'active';
}

const capText = (k: KeyJson) => (k.monthly_spend_cap_micro_usd === null ? 'none' : `${dollars(k.monthly_spend_cap_micro_usd)} a month`);

function KeyRow(props: { k: KeyJson; nowSeconds: number }) {
  const k = props.k;
  const state = keyState(k, props.nowSeconds);
  const label = k.name || k.prefix;
  return (
    <tr data-key-id={k.id} class={`key-${state}`}>
      <td data-label="Name" class="key-name">{k.name || '—'}</td>
      <td data-label="Key">
        <code>{k.prefix}</code>
      </td>
      <td data-label="Status">
        <span class={`status status-${state}`}>{state}</span>
      </td>
      <td data-label="Last used" class="last-used">{k.last_used_at === null ? 'never' : dateTime(k.last_used_at)}</td>
      <td data-label="Spend, last 30 days" class="num spend-30d" data-micro-usd={k.spend.last_30_days_micro_usd}>
        {dollars(k.spend.last_30_days_micro_usd)}
      </td>
      <td data-label="Spend, this month" class="num spend-month" data-micro-usd={k.spend.this_month_micro_usd}>
        {dollars(k.spend.this_month_micro_usd)}
      </td>
      <td data-label="Monthly spend cap" class="spend-cap">{capText(k)}</td>
      <td data-label="Models">{k.models ? k.models.join(', ') : 'all the tier allows'}</td>
      <td data-label="Caps a minute">{keyCaps(k)}</td>
      <td data-label="Expires">{k.expires_at === null ? 'never' : day(k.expires_at)}</td>
      <td data-label="Created">{day(k.created_at)}</td>
      <td class="actions">
        {state === 'revoked' ? (
          k.revoked_at === null ? null : <span class="muted">revoked {day(k.revoked_at)}</span>
        ) : (
          <>
            <button type="button" data-action="edit-key" data-focus="name" data-key-id={k.id} data-key-name={k.name} data-cap-usd={k.monthly_spend_cap_usd ?? ''}>
              Rename
            </button>
            <button type="button" data-action="edit-key" data-focus="cap" data-key-id={k.id} data-key-name={k.name} data-cap-usd={k.monthly_spend_cap_usd ?? ''}>
              Spend cap
            </button>
            {k.status === 'disabled' ? (
              <button type="button" data-action="set-key-status" data-status="active" data-key-id={k.id}>
                Enable
              </button>
            ) : (
              <button type="button" data-action="set-key-status" data-status="disabled" data-key-id={k.id}>
                Disable
              </button>
            )}
            <button type="button" class="danger" data-action="revoke" data-key-id={k.id} data-key-name={label}>
              Revoke
            </button>
          </>
        )}
      </td>
    </tr>
  );
}

function KeyRows(props: { keys: KeyJson[]; nowSeconds: number }) {
  return (
    <table class="keys">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Key</th>
          <th scope="col">Status</th>
          <th scope="col">Last used</th>
          <th scope="col" class="num">
            Spend, last 30 days
          </th>
          <th scope="col" class="num">
            Spend, this month
          </th>
          <th scope="col">Monthly spend cap</th>
          <th scope="col">Models</th>
          <th scope="col">Caps a minute</th>
          <th scope="col">Expires</th>
          <th scope="col">Created</th>
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {props.keys.map((k) => (
          <KeyRow k={k} nowSeconds={props.nowSeconds} />
        ))}
      </tbody>
    </table>
  );
}

export function KeysTable(props: { keys: KeyJson[]; nowSeconds: number }) {
  const keys = [...props.keys].sort((a, b) => b.created_at - a.created_at || a.id.localeCompare(b.id));
  const live = keys.filter((k) => k.status !== 'revoked');
  const revoked = keys.filter((k) => k.status === 'revoked');
  return (
    <div class="keys-list">
      {live.length ? <KeyRows keys={live} nowSeconds={props.nowSeconds} /> : <p class="empty">No keys yet. Create one to call the API.</p>}
      {revoked.length ? (
        <details class="revoked-keys">
          <summary>Revoked keys ({revoked.length})</summary>
          <KeyRows keys={revoked} nowSeconds={props.nowSeconds} />
        </details>
      ) : null}
    </div>
  );
}

/** One dialog for a key's name and monthly spend cap (the "Rename" and "Spend cap" buttons open it). */
export function EditKeyDialog() {
  return (
    <dialog id="edit-key" aria-labelledby="edit-key-title">
      <form data-form="edit-key">
        <h2 id="edit-key-title">Edit key</h2>
        <input type="hidden" name="key_id" value="" />
        <label>
          Name
          <input type="text" name="name" maxlength={200} />
        </label>
        <label>
          Monthly spend cap in USD (empty: no cap)
          <input type="number" name="monthly_spend_cap_usd" min={0.01} step={0.01} inputmode="decimal" />
        </label>
        <p class="hint">A request that would take the key’s spend this month (UTC) beyond its cap is refused with HTTP 402.</p>
        <p class="error" role="alert" hidden />
        <p class="dialog-buttons">
          <button type="submit" class="primary">
            Save
          </button>
          <button type="button" data-action="close-dialog">
            Cancel
          </button>
        </p>
      </form>
    </dialog>
  );
}
