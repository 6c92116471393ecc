import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from './synth-itapi';

/** The environment of a clean CI runner: no AWS credentials or profile, no metadata service. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|CDK_)/.test(k)) env[k] = v;
  return {
    ...env,
    CDK_DISABLE_VERSION_CHECK: '1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: path.join(os.tmpdir(), 'itapi-no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(os.tmpdir(), 'itapi-no-aws-credentials'),
  };
}

describe('npx cdk synth', () => {
  it('synthesizes the app offline, without AWS credentials, notices or telemetry', () => {
    const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as Record<string, any>;
    expect(cdkJson.app).toBe('npx tsx bin/itapi.ts');
    expect(cdkJson.notices).toBe(false);
    expect(cdkJson.context['cli-telemetry']).toBe(false);

    const outdir = mkdtempSync(path.join(os.tmpdir(), 'itapi-cli-synth-'));
    const run = spawnSync('npx', ['cdk', 'synth', '--no-notices', '--quiet', '--output', outdir], {
      cwd: PROJECT_ROOT,
      env: offlineEnv(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr.slice(-3000) }).toEqual({ status: 0, stderr: '' });

    const template = JSON.parse(readFileSync(path.join(outdir, 'Itapi.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
    const types = Object.values(template.Resources).map((r) => r.Type);
    expect(types.filter((t) => t === 'AWS::Lambda::Url')).toHaveLength(1);
    expect(types.filter((t) => t === 'AWS::DynamoDB::GlobalTable')).toHaveLength(8);
    const report = JSON.parse(readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: Array<{ pluginName: string; conclusion: string }> };
    expect(report.pluginReports.find((p) => p.pluginName === 'AwsSolutions')?.conclusion).toBe('success');
    expect(existsSync(path.join(outdir, 'manifest.json'))).toBe(true);
  }, 150_000);
});
