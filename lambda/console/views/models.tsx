import { count, perMtok } from './format';
import { Layout, TopBar, type AssetVersions } from './pages';
import type { AccountJson, ModelChoiceJson } from './types';

/**
 * `/console/models`: every model the account may use, with the prices the gateway bills (from the
 * catalog) and which of the account's keys may call it. On a narrow screen each row is a card.
 */

export interface ModelsPageProps {
  account: AccountJson;
  models: ModelChoiceJson[];
  /** For each model id, the names of the account's usable keys that may call it. */
  keysByModel: Record<string, string[]>;
  /** How many usable (active, unexpired) keys the account has. */
  usableKeys: number;
  csrfToken: string;
  assets: AssetVersions;
}

function keysLine(names: string[], usable: number): string {
  if (!usable) return 'no key yet';
  if (!names.length) return 'none of your keys';
  if (names.length === usable) return usable === 1 ? 'your key' : `all ${usable} keys`;
  return names.join(', ');
}

export function ModelsPage(p: ModelsPageProps) {
  return (
    <Layout title={`Models · ${p.account.name} · itapi console`} page="models" assets={p.assets} csrfToken={p.csrfToken}>
      <TopBar account={p.account} csrfToken={p.csrfToken} current="models" />
      <main>
        <section class="panel" aria-labelledby="models-title">
          <h2 id="models-title">Models</h2>
          <p class="hint">
            The models this account may use ({p.account.tier} tier), with the prices the gateway bills, in US dollars per 1M tokens. Cached input is
            what a prompt read from the provider’s cache costs; cache write, what putting it there costs. Context is the most tokens of prompt and
            output a request may hold. “—”: the catalog names no such price.
          </p>
          {p.models.length ? (
            <table class="models cards">
              <caption class="visually-hidden">Prices in US dollars per 1M tokens, and context sizes in tokens</caption>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col" class="num">
                    Input
                  </th>
                  <th scope="col" class="num">
                    Output
                  </th>
                  <th scope="col" class="num">
                    Cached input
                  </th>
                  <th scope="col" class="num">
                    Cache write
                  </th>
                  <th scope="col" class="num">
                    Cache write (1 h)
                  </th>
                  <th scope="col" class="num">
                    Context
                  </th>
                  <th scope="col" class="num">
                    Max output
                  </th>
                  <th scope="col">Your keys</th>
                </tr>
              </thead>
              <tbody>
                {p.models.map((m) => (
                  <tr data-model={m.id}>
                    <th scope="row" class="model-name">
                      <code>{m.id}</code> <span class="muted">{m.owned_by}</span>
                      {m.kind === 'embedding' ? <span class="status">embedding</span> : null}
                    </th>
                    <td class="num" data-label="Input" data-price="input">
                      {perMtok(m.pricing.input_per_mtok)}
                    </td>
                    <td class="num" data-label="Output" data-price="output">
                      {perMtok(m.pricing.output_per_mtok)}
                    </td>
                    <td class="num" data-label="Cached input" data-price="cached_input">
                      {perMtok(m.pricing.cached_input_per_mtok)}
                    </td>
                    <td class="num" data-label="Cache write" data-price="cache_write">
                      {perMtok(m.pricing.cache_write_per_mtok)}
                    </td>
                    <td class="num" data-label="Cache write (1 h)" data-price="cache_write_1h">
                      {perMtok(m.pricing.cache_write_1h_per_mtok)}
                    </td>
                    <td class="num" data-label="Context" data-context={m.context_window}>
                      {count(m.context_window)}
                    </td>
                    <td class="num" data-label="Max output">
                      {m.max_output_tokens === null ? '—' : count(m.max_output_tokens)}
                    </td>
                    <td data-label="Your keys">{keysLine(p.keysByModel[m.id] ?? [], p.usableKeys)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="empty">This account’s tier allows no model. Ask your operator.</p>
          )}
        </section>
      </main>
    </Layout>
  );
}
