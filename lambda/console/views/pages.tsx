import type { Child } from 'hono/jsx';
import { AccountPanel, KeysTable, LedgerTable, TopUpPanel, UsageSummary } from './panels';
import { EditKeyDialog } from './keys';
import { keyNamesOf, LedgerFilters } from './ledger-filters';
import { AlertsPanel } from './alerts-panel';
import type { AccountJson, KeyJson, LedgerPageJson, ModelChoiceJson, TopUpOptionsJson, UsageSummaryJson } from './types';

/**
 * Whole pages, rendered on the server only. Every URL in them is relative, so the console works
 * under any prefix (`/console/` on the Function URL, `/prod/console/` on the REST API).
 */

export interface AssetVersions {
  script: string;
  styles: string;
  icon: string;
}

export function Layout(props: { title: string; page: string; assets: AssetVersions; csrfToken?: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        {props.csrfToken ? <meta name="csrf-token" content={props.csrfToken} /> : null}
        <title>{props.title}</title>
        <link rel="icon" href={`assets/icon.svg?v=${props.assets.icon}`} type="image/svg+xml" />
        <link rel="stylesheet" href={`assets/console.css?v=${props.assets.styles}`} />
        <script src={`assets/console.js?v=${props.assets.script}`} defer />
      </head>
      <body data-page={props.page}>{props.children}</body>
    </html>
  );
}

export interface ConsolePageProps {
  account: AccountJson;
  keys: KeyJson[];
  models: ModelChoiceJson[];
  usage: UsageSummaryJson;
  ledger: LedgerPageJson;
  topUp: TopUpOptionsJson;
  csrfToken: string;
  nowMs: number;
  /** A line shown at the top, e.g. after returning from Stripe Checkout. */
  notice?: string;
  assets: AssetVersions;
}

/** The bar atop every signed-in page: the account, the console's pages, and sign-out. */
export function TopBar(props: { account: AccountJson; csrfToken: string; current: 'overview' | 'models' }) {
  const link = (page: 'overview' | 'models', href: string, text: string) => (
    <a href={href} aria-current={props.current === page ? 'page' : undefined}>
      {text}
    </a>
  );
  return (
    <header class="top">
      <h1>
        itapi <span class="muted">console</span>
      </h1>
      <nav class="pages" aria-label="Console pages">
        {link('overview', './', 'Overview')}
        {link('models', 'models', 'Models')}
      </nav>
      <p class="who">
        <span class="account-name">{props.account.name}</span> <code class="account-id">{props.account.id}</code>
      </p>
      <form method="post" action="sign-out">
        <input type="hidden" name="csrf" value={props.csrfToken} />
        <button type="submit" class="link">
          Sign out
        </button>
      </form>
    </header>
  );
}

export function ConsolePage(p: ConsolePageProps) {
  return (
    <Layout title={`${p.account.name} · itapi console`} page="console" assets={p.assets} csrfToken={p.csrfToken}>
      <TopBar account={p.account} csrfToken={p.csrfToken} current="overview" />
      <main>
        {p.notice ? (
          <p class="notice" role="status">
            {p.notice}
          </p>
        ) : null}
        <div class="row">
          <div id="account-panel" class="grow">
            <AccountPanel account={p.account} />
          </div>
          <div id="top-up-panel" class="grow">
            <TopUpPanel options={p.topUp} accountId={p.account.id} />
          </div>
        </div>
        <div id="alerts-panel">
          <AlertsPanel alert={p.account.low_balance_alert} />
        </div>

        <section class="panel" aria-labelledby="keys-title">
          <div class="panel-head">
            <h2 id="keys-title">API keys</h2>
            <button type="button" class="primary" data-action="open-create-key">
              Create key
            </button>
          </div>
          <p class="error" role="alert" data-error="keys" hidden />
          <div id="keys-panel">
            <KeysTable keys={p.keys} nowSeconds={Math.floor(p.nowMs / 1000)} />
          </div>
        </section>

        <section class="panel" aria-labelledby="usage-title">
          <div class="panel-head">
            <h2 id="usage-title">Usage</h2>
            <form class="range" data-form="range">
              <label>
                From <input type="date" name="from" value={p.usage.from} required />
              </label>
              <label>
                To <input type="date" name="to" value={p.usage.to} required />
              </label>
              <LedgerFilters keys={p.keys} models={[...new Set([...p.models.map((m) => m.id), ...p.usage.models])].sort()} />
              <button type="submit">Show</button>
              <a class="button" data-link="csv" href={`api/usage.csv?from=${p.usage.from}&to=${p.usage.to}`} download>
                Download CSV
              </a>
            </form>
          </div>
          <p class="error" role="alert" data-error="range" hidden />
          <div id="usage-panel">
            <UsageSummary summary={p.usage} />
          </div>
          <h3>Requests</h3>
          <div id="ledger-panel">
            <LedgerTable page={p.ledger} hasNewer={false} keyNames={keyNamesOf(p.keys)} />
          </div>
        </section>
      </main>

      <CreateKeyDialog models={p.models} />
      <EditKeyDialog />
      <dialog id="key-created" aria-labelledby="key-created-title">
        <h2 id="key-created-title">Your new key</h2>
        <p>Copy it now: it is shown only this once, and the gateway keeps only its hash.</p>
        <p class="secret">
          <code id="new-key-secret" />
        </p>
        <p class="dialog-buttons">
          <button type="button" data-action="copy-key" class="primary">
            Copy
          </button>
          <span class="copied" role="status" hidden>
            Copied
          </span>
          <button type="button" data-action="close-dialog">
            Done
          </button>
        </p>
      </dialog>
      <dialog id="revoke-key" aria-labelledby="revoke-key-title">
        <h2 id="revoke-key-title">Revoke this key?</h2>
        <p>
          <strong id="revoke-key-name" /> stops working within a minute, for every client that uses it. This cannot be undone.
        </p>
        <p class="error" role="alert" hidden />
        <p class="dialog-buttons">
          <button type="button" class="danger" data-action="confirm-revoke">
            Revoke
          </button>
          {/* The safe choice has the focus: Enter pressed twice cancels, it never revokes. */}
          <button type="button" data-action="close-dialog" autofocus>
            Cancel
          </button>
        </p>
      </dialog>
    </Layout>
  );
}

function CreateKeyDialog(props: { models: ModelChoiceJson[] }) {
  return (
    <dialog id="create-key" aria-labelledby="create-key-title">
      <form data-form="create-key">
        <h2 id="create-key-title">Create key</h2>
        <label>
          Name
          <input type="text" name="name" maxlength={200} placeholder="e.g. laptop, ci, chat-app" />
        </label>
        <fieldset>
          <legend>Models (none ticked: every model the account may use)</legend>
          <div class="model-choices">
            {props.models.map((m) => (
              <label class="check">
                <input type="checkbox" name="models" value={m.id} /> {m.id}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="row">
          <label>
            Requests a minute (optional cap)
            <input type="number" name="rpm" min={1} step={1} />
          </label>
          <label>
            Tokens a minute (optional cap)
            <input type="number" name="tpm" min={1} step={1} />
          </label>
          <label>
            Monthly spend cap in USD (optional)
            <input type="number" name="monthly_spend_cap_usd" min={0.01} step={0.01} inputmode="decimal" />
          </label>
          <label>
            Expires (optional, end of day UTC)
            <input type="date" name="expires" />
          </label>
        </div>
        <p class="error" role="alert" hidden />
        <p class="dialog-buttons">
          <button type="submit" class="primary">
            Create key
          </button>
          <button type="button" data-action="close-dialog">
            Cancel
          </button>
        </p>
      </form>
    </dialog>
  );
}

/** The page a sign-in link opens: its script posts the token from the link's fragment. */
export function SignInPage(props: { assets: AssetVersions }) {
  return (
    <Layout title="Signing in · itapi console" page="sign-in" assets={props.assets}>
      <main class="narrow">
        <h1>itapi console</h1>
        <form method="post" action="session" data-form="sign-in">
          <input type="hidden" name="token" value="" />
          <p data-state="working">Signing you in…</p>
          <p data-state="no-token" hidden>
            This link has no sign-in token. Open the whole link you were given, or ask your operator for a new one.
          </p>
          <button type="submit" class="primary" hidden>
            Continue
          </button>
        </form>
        <noscript>
          <p>The console needs JavaScript.</p>
        </noscript>
      </main>
    </Layout>
  );
}

/**
 * A signed-in holder opened a link to another account: nothing changes until they choose. The
 * link stays unused until "Switch" posts it again (from this page, so from our own origin).
 */
export function SwitchAccountPage(props: { current: { id: string; name: string }; next: { id: string; name: string }; token: string; assets: AssetVersions }) {
  return (
    <Layout title="Switch account? · itapi console" page="switch-account" assets={props.assets}>
      <main class="narrow">
        <h1>Switch account?</h1>
        <p>
          You are signed in to <strong>{props.current.name}</strong> <code>{props.current.id}</code>. This link signs you in to{' '}
          <strong class="next-account">{props.next.name}</strong> <code>{props.next.id}</code> instead.
        </p>
        <form method="post" action="session" class="dialog-buttons">
          <input type="hidden" name="token" value={props.token} />
          <input type="hidden" name="switch" value="yes" />
          <a class="button" href="./" autofocus>
            Stay in {props.current.name}
          </a>
          <button type="submit" class="primary">
            Switch to {props.next.name}
          </button>
        </form>
      </main>
    </Layout>
  );
}

/** A page with one message: signed out, link used, not signed in, an error. */
export function MessagePage(props: { title: string; message: string; assets: AssetVersions }) {
  return (
    <Layout title={`${props.title} · itapi console`} page="message" assets={props.assets}>
      <main class="narrow">
        <h1>{props.title}</h1>
        <p>{props.message}</p>
      </main>
    </Layout>
  );
}
