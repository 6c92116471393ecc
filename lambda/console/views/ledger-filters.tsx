import type { KeyJson } from './types';

/** The ledger's filters: by key and by model, each with an "All" choice; the CSV follows them. */
export function LedgerFilters(props: { keys: KeyJson[]; models: string[] }) {
  return (
    <>
      <label for="ledger-key">Key</label>
      <select id="ledger-key" name="key">
        <option value="">All</option>
        {props.keys.map((k) => (
          <option value={k.id} data-label={k.name || k.prefix}>
            {k.name ? `${k.name} (${k.prefix})` : k.prefix}
            {k.status === 'revoked' ? ' — revoked' : ''}
          </option>
        ))}
      </select>
      <label for="ledger-model">Model</label>
      <select id="ledger-model" name="model">
        <option value="">All</option>
        {props.models.map((m) => (
          <option value={m}>{m}</option>
        ))}
      </select>
    </>
  );
}

/** Key id → what the ledger shows for it: its name, else its display prefix. */
export function keyNamesOf(keys: KeyJson[]): Record<string, string> {
  return Object.fromEntries(keys.map((k) => [k.id, k.name || k.prefix]));
}
