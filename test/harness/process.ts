// Long-running processes of a stack (the repository service, the worker): each in its own process
// group (a terminal's Ctrl-C reaches only the test or bench process, which stops them in order),
// output appended to a log file, recorded in a tagged folder (tags.ts) so that a crashed run's
// processes are found and ended by the next run. Restartable and killable, for crash tests.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerCleanup } from './cleanup.js';
import { recordProcess } from './tags.js';

export interface ProcessSpec {
  name: string;
  file: string;
  args: string[];
  /** The complete environment. */
  env: Record<string, string | undefined>;
  logPath: string;
  /** Tagged folder to record the pid in, with a command-line marker (pid reuse). */
  tagDir: string;
  marker: string;
  /** Adds an IPC channel (process.send()). */
  ipc?: boolean;
  cwd?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number | undefined;
  readonly logPath: string;
  /** The running child (undefined before the first start). */
  readonly child: ChildProcess | undefined;
  alive(): boolean;
  /** Starts it (again); fails when it exits within its first 1.5 s (bad configuration). */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL to its group after a grace period. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once (for crash tests). */
  kill(): Promise<void>;
  tail(lines?: number): string;
}

export function managedProcess(spec: ProcessSpec): ManagedProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const waitExit = async (ms: number) => {
    const grace = new AbortController();
    const done = await Promise.race([exited.then(() => true), sleep(ms, false, { signal: grace.signal }).catch(() => false)]);
    grace.abort();
    return done;
  };
  const tail = (lines = 40) => tailOf(spec.logPath, lines);
  const self: ManagedProcess = {
    name: spec.name,
    logPath: spec.logPath,
    get pid() {
      return child?.pid;
    },
    get child() {
      return child;
    },
    alive,
    async start() {
      if (alive()) return;
      appendFileSync(spec.logPath, `--- ${spec.name} starting ${new Date().toISOString()}\n`);
      const c = launch(spec);
      child = c;
      exited = new Promise((resolve) => {
        c.once('exit', () => resolve());
        c.once('error', () => resolve());
      });
      if (await waitExit(1500)) throw new Error(`${spec.name} exited at start:\n${tail(30)}`);
    },
    async stop() {
      const c = child;
      if (!alive() || !c?.pid) return;
      c.kill('SIGTERM');
      const done = await waitExit(15_000);
      signalGroup(c.pid, 'SIGKILL');
      if (!done) await waitExit(5000);
    },
    async kill() {
      if (!alive()) return;
      child!.kill('SIGKILL');
      await waitExit(5000);
    },
    tail,
  };
  registerCleanup(`${spec.name} process`, () => self.stop());
  return self;
}

function launch(spec: ProcessSpec): ChildProcess {
  const fd = openSync(spec.logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    const stdio: StdioOptions = spec.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
    child = spawn(spec.file, spec.args, { env: spec.env, stdio, detached: true, cwd: spec.cwd });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`${spec.name}: could not start ${spec.file}`);
  recordProcess(spec.tagDir, child.pid, spec.marker);
  return child;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* gone */
  }
}

function tailOf(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Peak resident memory (VmHWM) of a live process, in bytes. */
export function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** Polls `cond` every 200 ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(200);
  }
}
