// bench/procs.ts pinApart: npm run bench's "the store on its own core" step pins the servers under
// test to CPU 0 and the rest of the bench to the other CPUs, then puts every process back on all of
// them. Read from the kernel (/proc/<pid>/status, Cpus_allowed_list), every thread included.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { pinApart } from '../../bench/procs';

const allowed = (pid: number, tid = pid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1];
const threads = (pid: number) => readdirSync(`/proc/${pid}/task`).map(Number);

describe('pinApart', () => {
  const children: ChildProcess[] = [];
  const idle = async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(child);
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    return child.pid!;
  };
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  const cpus = availableParallelism();
  const all = cpus > 1 ? `0-${cpus - 1}` : '0';

  (cpus >= 2 ? it : it.skip)('puts the servers under test on CPU 0 and the others apart, every thread, then back on all CPUs', async () => {
    const [underTest, other] = [await idle(), await idle()];
    const undo = pinApart([underTest], [other]);
    try {
      expect(undo).toBeDefined();
      const rest = cpus === 2 ? '1' : `1-${cpus - 1}`;
      // Node runs several threads (V8's platform workers, libuv's): each is pinned, not only the main one.
      expect(threads(underTest).length).toBeGreaterThan(1);
      for (const tid of threads(underTest)) expect(allowed(underTest, tid)).toBe('0');
      for (const tid of threads(other)) expect(allowed(other, tid)).toBe(rest);
      // The bench's own process (autocannon, the measuring client) goes with the others.
      expect(allowed(process.pid)).toBe(rest);
    } finally {
      undo?.();
    }
    for (const pid of [underTest, other]) for (const tid of threads(pid)) expect(allowed(pid, tid)).toBe(all);
    expect(allowed(process.pid)).toBe(all);
  });

  (cpus >= 2 ? it : it.skip)('puts the others back when a process under test has exited before the undo', async () => {
    const [underTest, other] = [await idle(), await idle()];
    const undo = pinApart([underTest], [other]);
    expect(undo).toBeDefined();
    const child = children.find((c) => c.pid === underTest)!;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(() => undo!()).not.toThrow();
    for (const tid of threads(other)) expect(allowed(other, tid)).toBe(all);
    expect(allowed(process.pid)).toBe(all);
  });

  it('changes nothing and says so when a process cannot be pinned', async () => {
    const pid = await idle();
    // A pid that is gone: taskset fails, and every process it had pinned is put back.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => gone.once('exit', resolve));
    const undo = pinApart([pid, gone.pid!], []);
    expect(undo).toBeUndefined();
    for (const tid of threads(pid)) expect(allowed(pid, tid)).toBe(all);
  });
});
