// Long-running helper processes of a bench run (sshd, the repository service, the worker): each
// in its own process group (a terminal's Ctrl-C reaches only the bench, which stops them in
// order), output appended to a log file, recorded in a tagged folder so a crashed run's
// processes are found and ended by the next run.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { onCleanup } from './cleanup.js';
import { recordProcess } from './tags.js';

export interface Managed {
  name: string;
  pid: number;
  child: ChildProcess;
  logPath: string;
  exited: Promise<void>;
  alive(): boolean;
  /** SIGTERM to the process, SIGKILL to its group after `graceMs`. Idempotent. */
  stop(): Promise<void>;
  tail(lines?: number): string;
}

export interface ManagedOptions {
  name: string;
  file: string;
  args: string[];
  env: Record<string, string | undefined>;
  logPath: string;
  /** Tagged folder to record the pid in (sweep after a crash), with a command-line marker. */
  tagDir: string;
  marker: string;
  graceMs?: number;
  /** Adds an IPC channel (fd 3) for process.send(). */
  ipc?: boolean;
  cwd?: string;
}

export function startManaged(o: ManagedOptions): Managed {
  const fd = openSync(o.logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    const stdio: StdioOptions = o.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd];
    child = spawn(o.file, o.args, { env: o.env, stdio, detached: true, cwd: o.cwd });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`${o.name}: could not start ${o.file}`);
  const pid = child.pid;
  recordProcess(o.tagDir, pid, o.marker);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      /* gone */
    }
  };
  const stop = onCleanup(`${o.name} (pid ${pid})`, async () => {
    if (!alive()) return;
    child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(o.graceMs ?? 15_000, false)]);
    group('SIGKILL');
    if (!done) await exited;
  });
  return {
    name: o.name,
    pid,
    child,
    logPath: o.logPath,
    exited,
    alive,
    stop,
    tail: (lines = 30) => {
      try {
        return readFileSync(o.logPath, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
  };
}
