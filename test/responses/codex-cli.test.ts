import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CatalogFile } from '../../lambda/catalog';
import { books, expectBooksBalance } from '../reliability/support';
import { closedPort, codexExec as runCodex, completedItems, type CodexRun } from '../support/agents';
import { catalogOf, createAccount, startTestGateway, type TestAccount, type TestGateway } from '../support/gateway';
import { anthropicAnswer, modelEntry, openAiAnswer, StandIn } from './support';

/**
 * The Codex CLI (`@openai/codex`, Responses API only) run non-interactively with `codex exec`
 * against the gateway as a custom provider, offline: its home is a temp dir with the
 * config.toml docs/CLIENTS.md gives, every proxy variable points at a closed loopback port (so
 * any attempt to leave the machine fails at once), and only 127.0.0.1 is exempt.
 */
const openai = new StandIn('http1');
const anthropic = new StandIn('http1');
let gw: TestGateway;
let acct: TestAccount;
let home: string;
let deadProxy: string;

beforeAll(async () => {
  const [openaiUrl, anthropicUrl] = await Promise.all([openai.start(), anthropic.start()]);
  openai.handler = (request) => openAiAnswer(request, { toolArguments: '{"cmd":"echo itapi-tool-ran"}' });
  anthropic.handler = (request) => anthropicAnswer(request, { toolInput: { cmd: 'echo itapi-tool-ran' } });
  const catalog: CatalogFile = {
    models: {
      'gpt-test': modelEntry({ provider: 'openai-compatible', base_url: `${openaiUrl}/v1`, model: 'upstream-model' }),
      'claude-test': modelEntry({ provider: 'anthropic', base_url: anthropicUrl, model: 'claude-standin' }, 'anthropic'),
    },
  };
  gw = await startTestGateway({ catalog: catalogOf(catalog) });
  acct = await createAccount(gw, { tier: 'enterprise', rpm: 10_000, tpm: 100_000_000, creditsMicroUsd: 100_000_000 });
  home = mkdtempSync(join(tmpdir(), 'itapi-codex-'));
  deadProxy = `http://127.0.0.1:${await closedPort()}`;
});

afterAll(async () => {
  await gw.stop();
  await Promise.all([openai.stop(), anthropic.stop()]);
  rmSync(home, { recursive: true, force: true });
});

function codexExec(model: string, prompt: string, key = acct.key): Promise<CodexRun> {
  return runCodex({ baseUrl: gw.baseUrl, key, model, prompt, root: home, deadProxy });
}

describe.each([
  { name: 'OpenAI-compatible', model: 'gpt-test', upstream: () => openai, toolRole: 'tool' },
  { name: 'Anthropic', model: 'claude-test', upstream: () => anthropic, toolRole: 'user' },
])('codex exec through the gateway on the $name route', ({ model, upstream }) => {
  it('runs a turn with a tool call: Codex runs the command, sends its output back by call_id, and prints the answer', async () => {
    const before = upstream().requests.length;
    const run = await codexExec(model, 'say OK');
    const diagnostics = `exit ${run.code}\n${run.stderr.slice(-2000)}\n${JSON.stringify(run.events).slice(0, 2000)}`;
    expect({ code: run.code, diagnostics }).toMatchObject({ code: 0 });
    const commands = completedItems(run, 'command_execution');
    expect(commands.map((c) => c.command).join(' ')).toContain('echo itapi-tool-ran');
    const messages = completedItems(run, 'agent_message');
    // Anthropic merges Codex's two user messages into one turn, so its stand-in echoes both.
    expect(messages).toHaveLength(1);
    expect(messages[0].text).toMatch(/^Echo: [\s\S]*say OK$/);
    const turn = run.events.find((e) => e.type === 'turn.completed');
    expect(turn?.usage.input_tokens).toBeGreaterThan(0);
    // Two turns upstream: the call, then the answer to its output.
    const requests = upstream().requests.slice(before).map((r) => JSON.parse(r.body.toString('utf8')));
    expect(requests).toHaveLength(2);
    const second = JSON.stringify(requests[1].messages);
    expect(second).toContain('itapi-tool-ran');
    expect(second).toMatch(/call_standin_1|toolu_standin_1/);
  });
});

describe('codex exec errors', () => {
  it('exits 1 with the gateway’s message for an unknown model', async () => {
    const run = await codexExec('no-such-model', 'say OK');
    expect(run.code).toBe(1);
    expect(run.stderr + JSON.stringify(run.events)).toMatch(/no-such-model/);
  });

  it('leaves the books balanced', async () => {
    expectBooksBalance(await books(gw, acct.accountId));
  });
});
