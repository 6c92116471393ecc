import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The coding agents as a user runs them against the gateway, offline: each in a temp HOME, with
 * nothing but loopback reachable. Claude Code (`claude -p`) and the Codex CLI (`codex exec`).
 */
export const CLAUDE_BIN = join(__dirname, '../../node_modules/@anthropic-ai/claude-code/bin/claude.exe');
export const CODEX_BIN = require.resolve('@openai/codex/bin/codex.js');

export interface AgentRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the run, ms. */
  elapsedMs: number;
}

function run(command: string, args: string[], cwd: string, env: Record<string, string>, timeoutMs: number): Promise<AgentRun> {
  const started = Date.now();
  // stdin closed: with a pipe `codex exec` waits to read more prompt from it.
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}

export interface ClaudeOptions {
  /** The gateway's origin (no `/v1`): Claude Code appends `/v1/messages`. */
  origin: string;
  key: string;
  model: string;
  prompt: string;
  allowedTools?: string;
  /** Extra environment, e.g. `CLAUDE_CODE_MAX_RETRIES` or `CLAUDE_CODE_MAX_OUTPUT_TOKENS`. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** `claude -p --output-format=json` against the gateway. */
export function runClaude(o: ClaudeOptions): Promise<AgentRun> {
  const home = mkdtempSync(join(tmpdir(), 'itapi-claude-'));
  const cwd = join(home, 'work');
  mkdirSync(cwd);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    ANTHROPIC_BASE_URL: o.origin,
    ANTHROPIC_AUTH_TOKEN: o.key,
    ANTHROPIC_MODEL: o.model,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    ...o.env,
  };
  return run(CLAUDE_BIN, ['-p', `--allowedTools=${o.allowedTools ?? 'Bash'}`, '--output-format=json', o.prompt], cwd, env, o.timeoutMs ?? 50_000);
}

/** A loopback port nothing listens on: connections to it are refused at once (a proxy that lets nothing out). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The config.toml of docs/CLIENTS.md, with the settings that stop retries (`stream_max_retries = 0`) and background traffic. */
export function writeCodexConfig(codexHome: string, baseUrl: string, model: string): void {
  writeFileSync(
    join(codexHome, 'config.toml'),
    [
      `model = "${model}"`,
      'model_provider = "itapi"',
      'web_search = "disabled"',
      '',
      '[model_providers.itapi]',
      'name = "itapi"',
      `base_url = "${baseUrl}"`,
      'env_key = "ITAPI_KEY"',
      'wire_api = "responses"',
      'stream_max_retries = 0',
      'request_max_retries = 0',
      'stream_idle_timeout_ms = 20000',
      '',
      '[analytics]',
      'enabled = false',
      '',
      '[features]',
      'plugins = false',
      '',
    ].join('\n'),
  );
}

export interface CodexOptions {
  /** The gateway's base URL, with `/v1`. */
  baseUrl: string;
  key: string;
  model: string;
  prompt: string;
  /** A temp folder for Codex's home and work dir. */
  root: string;
  /** A proxy URL that refuses every connection, so nothing leaves the machine. */
  deadProxy: string;
  timeoutMs?: number;
}

export interface CodexRun extends AgentRun {
  events: Array<Record<string, any>>;
}

/** `codex exec --json` against the gateway as a custom provider. */
export async function codexExec(o: CodexOptions): Promise<CodexRun> {
  const codexHome = mkdtempSync(join(o.root, 'home-'));
  const workdir = mkdtempSync(join(o.root, 'work-'));
  writeCodexConfig(codexHome, o.baseUrl, o.model);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: codexHome,
    CODEX_HOME: codexHome,
    ITAPI_KEY: o.key,
    HTTPS_PROXY: o.deadProxy,
    HTTP_PROXY: o.deadProxy,
    ALL_PROXY: o.deadProxy,
    NO_PROXY: '127.0.0.1,localhost',
    RUST_LOG: 'error',
  };
  const result = await run(process.execPath, [CODEX_BIN, 'exec', '--skip-git-repo-check', '--ephemeral', '--json', o.prompt], workdir, env, o.timeoutMs ?? 60_000);
  const events = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
  return { ...result, events };
}

/** Items of one type that Codex reported completed (`command_execution`, `agent_message`). */
export const completedItems = (run: CodexRun, type: string) =>
  run.events.filter((e) => e.type === 'item.completed' && e.item?.type === type).map((e) => e.item);
