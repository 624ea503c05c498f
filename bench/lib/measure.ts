// One timed run and the CPU it cost, by process: the client side (whatever the bench started and
// waited for: borg create and its ssh), an sshd listener's whole tree (its sessions, forced
// commands and their children, reaped into the listener when they end), a Node service process
// (itself, worker threads included, and its children), and the machine as a whole, so that CPU
// used by unrelated processes during the run shows up as "other".
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { f2, note } from './report.js';
import { descendantsOf, loadAverage, machineCpu, processesOfUser, ProcessSampler, procTimes, treeCpu, waitForNoDescendants } from './procfs.js';

export interface TimedRun {
  wallS: number;
  /** CPU seconds of the process tree the bench waited for (borg create + ssh on the client). */
  clientCpuS: number;
  code: number | null;
  stderr: string;
}

/** Runs argv as a Unix user (setpriv, no shell of ours in between) and times it. */
export async function runAsUser(user: { uid: number; gid: number }, argv: string[], env: Record<string, string>, cwd: string, timeoutMs = 3_600_000): Promise<TimedRun> {
  const before = procTimes(process.pid)!.reaped;
  const t0 = process.hrtime.bigint();
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', ...argv], { env, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wallS, clientCpuS: procTimes(process.pid)!.reaped - before, ...r };
}

export interface Part {
  start(): void;
  /** CPU seconds by group since start(). */
  stop(): Promise<Record<string, number>>;
  /** After stop(): figures that break down CPU counted elsewhere (not added to the machine's accounting). */
  detail?(): Record<string, number>;
}

/**
 * An sshd listener: everything below it, sampled every 50 ms and split by command line
 * (`classify`; what it does not name counts as `sshd`). sshd does not hand its sessions' CPU
 * time up to the listener (measured: the listener's cutime stays ~0 after a busy session), so
 * the figures come from sampling; the last < 50 ms of each process and processes that live less
 * than that (AuthorizedKeysCommand runs, partly) are missed. Waits for the sessions to end.
 */
export function sshdPart(pid: number, classify: (cmd: string) => string | undefined, label = 'sshd'): Part {
  let sampler: ProcessSampler;
  return {
    start() {
      sampler = new ProcessSampler(() => descendantsOf(pid), (cmd) => classify(cmd) ?? label, 50);
      sampler.start();
    },
    async stop() {
      await waitForNoDescendants(pid, () => true);
      return sampler.stop().cpu;
    },
  };
}

/** A long-lived process: its own CPU (all threads) and its children's (live or reaped). */
export function servicePart(pid: number, self: string, children: string): Part {
  let s0 = 0;
  let t0 = 0;
  return {
    start() {
      s0 = procTimes(pid)?.self ?? 0;
      t0 = treeCpu(pid);
    },
    stop() {
      const s1 = procTimes(pid)?.self ?? 0;
      const t1 = treeCpu(pid);
      return Promise.resolve({ [self]: s1 - s0, [children]: t1 - s1 - (t0 - s0) });
    },
  };
}

/**
 * Every process of a Unix user (processesOfUser), by `classify`'s groups, as a breakdown (detail):
 * CPU seconds, and `<group> run-queue wait`, the time they waited for a core. Not counted as CPU of
 * its own: the client's processes are the bench's own child (clientCpuS) on one path and
 * "other" on the other.
 */
export function userPart(uid: number, classify: (cmd: string) => string): Part {
  let sampler: ProcessSampler;
  const detail: Record<string, number> = {};
  return {
    start() {
      sampler = new ProcessSampler(() => processesOfUser(uid), classify, 50);
      sampler.start();
    },
    stop() {
      const { cpu, wait } = sampler.stop();
      Object.assign(detail, cpu);
      for (const [group, s] of Object.entries(wait)) detail[`${group} run-queue wait`] = s;
      return Promise.resolve({});
    },
    detail: () => detail,
  };
}

export interface Measured extends TimedRun {
  cpu: Record<string, number>;
  /** The parts' breakdowns (Part.detail), apart from the CPU accounted below. */
  detail: Record<string, number>;
  /** Busy CPU seconds of the whole machine (both cores) during the run. */
  machineBusyS: number;
  /** machineBusyS minus everything accounted for above: other processes on this machine. */
  otherCpuS: number;
  load1: number;
}

export async function measure(parts: Part[], fn: () => Promise<TimedRun>): Promise<Measured> {
  const load1 = loadAverage();
  const m0 = machineCpu().busy;
  for (const p of parts) p.start();
  const r = await fn();
  const cpu: Record<string, number> = { client: r.clientCpuS };
  for (const p of parts) Object.assign(cpu, await p.stop());
  const detail: Record<string, number> = {};
  for (const p of parts) Object.assign(detail, p.detail?.());
  const machineBusyS = machineCpu().busy - m0;
  const accounted = Object.values(cpu).reduce((a, b) => a + b, 0);
  return { ...r, cpu, detail, machineBusyS, otherCpuS: Math.max(0, machineBusyS - accounted), load1 };
}

/**
 * Waits until the machine is quiet: other work (tests, builds of other users) shares the two
 * cores with the backup being timed and skews single samples badly. Returns after a window in
 * which the machine used less than `cores` CPUs, or after `maxWaitMs` (then `quiet` is false).
 */
export async function waitForQuiet(o: { maxWaitMs: number; cores?: number; windowMs?: number }): Promise<{ quiet: boolean; waitedMs: number; busyCores: number }> {
  const t0 = Date.now();
  const windowMs = o.windowMs ?? 2000;
  for (;;) {
    const a = machineCpu().busy;
    await sleep(windowMs);
    const busyCores = (machineCpu().busy - a) / (windowMs / 1000);
    const waitedMs = Date.now() - t0;
    if (busyCores < (o.cores ?? 0.3)) return { quiet: true, waitedMs, busyCores };
    if (waitedMs >= o.maxWaitMs) return { quiet: false, waitedMs, busyCores };
  }
}

/** Before each timed sample: up to `quietWaitS` seconds for an idle machine; the busy CPUs when it did not get one. */
export async function quietBeforeSample(quietWaitS: number): Promise<number | undefined> {
  if (!quietWaitS) return undefined;
  const q = await waitForQuiet({ maxWaitMs: quietWaitS * 1000 });
  if (!q.quiet) note(`the machine stayed busy (${f2(q.busyCores)} CPUs) for ${quietWaitS} s; measuring anyway`);
  return q.quiet ? undefined : q.busyCores;
}
