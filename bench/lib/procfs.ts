// CPU accounting from /proc, cheap enough to sample while a backup runs: a process's own CPU
// time (all threads), the CPU of its reaped children (cutime/cstime: a parent that waits for its
// children inherits their totals — true for node/libuv and shells, not for sshd's sessions), its
// live descendants, and the machine's busy time.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux on x86 and arm). */
const HZ = 100;

export interface ProcTimes {
  pid: number;
  ppid: number;
  comm: string;
  /** Seconds of CPU the process itself used (user + system, all its threads). */
  self: number;
  /** Seconds of CPU of its children that it has waited for. */
  reaped: number;
}

export function procTimes(pid: number): ProcTimes | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] = state (field 3); utime = field 14 → f[11], stime f[12], cutime f[13], cstime f[14].
  const n = (i: number) => Number(f[i]) / HZ;
  return { pid, ppid: Number(f[1]), comm, self: n(11) + n(12), reaped: n(13) + n(14) };
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* thread gone */
    }
  }
  return out;
}

export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const stack = childrenOf(pid);
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...childrenOf(p));
  }
  return out;
}

/** CPU seconds of a process and everything below it, live or reaped. */
export function treeCpu(pid: number): number {
  const root = procTimes(pid);
  if (!root) return 0;
  let total = root.self + root.reaped;
  for (const d of descendantsOf(pid)) {
    const t = procTimes(d);
    if (t) total += t.self + t.reaped;
  }
  return total;
}

/** Busy and total seconds of all CPUs since boot (from /proc/stat; idle + iowait count as idle). */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0) / HZ;
  const idle = ((v[3] ?? 0) + (v[4] ?? 0)) / HZ;
  return { busy: total - idle, total };
}

export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/**
 * Follows a set of processes while a backup runs (`list`: e.g. a process's descendants, or every
 * process of a user) and remembers the last CPU time and run-queue wait seen of each, grouped by a
 * classifier. Short-lived processes are caught only if they live across a sample; the listener's
 * reaped time (see treeCpu) gives the exact total.
 */
export class ProcessSampler {
  private readonly seen = new Map<number, { group: string; cpu: number; wait: number }>();
  private readonly baseline = new Map<number, { cpu: number; wait: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly list: () => number[],
    private readonly classify: (cmd: string, comm: string) => string,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    for (const p of this.list()) {
      const t = procTimes(p);
      if (t) this.baseline.set(p, { cpu: t.self, wait: runDelayS(p) });
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  private sample(): void {
    for (const p of this.list()) {
      const t = procTimes(p);
      if (!t) continue;
      // Classified again each time: a forked child becomes what it execs (sh -c → borg serve).
      // (A zombie's command line is empty: it keeps the group it had.)
      const cmd = cmdline(p);
      const wait = runDelayS(p);
      const prev = this.seen.get(p);
      if (prev) {
        prev.cpu = t.self;
        prev.wait = wait;
        if (cmd) prev.group = this.classify(cmd, t.comm);
      } else this.seen.set(p, { group: this.classify(cmd, t.comm), cpu: t.self, wait });
    }
  }

  /** CPU seconds per group since start(), and seconds its processes waited for a core. */
  stop(): { cpu: Record<string, number>; wait: Record<string, number> } {
    this.sample();
    clearInterval(this.timer);
    const cpu: Record<string, number> = {};
    const wait: Record<string, number> = {};
    for (const [pid, s] of this.seen) {
      const b = this.baseline.get(pid);
      cpu[s.group] = (cpu[s.group] ?? 0) + s.cpu - (b?.cpu ?? 0);
      wait[s.group] = (wait[s.group] ?? 0) + s.wait - (b?.wait ?? 0);
    }
    return { cpu, wait };
  }
}

/** Waits until `pid` has no descendants left matching `pred` (e.g. an ended SSH session). */
export async function waitForNoDescendants(pid: number, pred: (cmd: string) => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (descendantsOf(pid).some((d) => pred(cmdline(d)))) {
    if (Date.now() > deadline) return;
    await sleep(50);
  }
}

/** Seconds a process's main thread waited on a run queue for a core (/proc/<pid>/schedstat). */
function runDelayS(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return 0;
  }
}

/**
 * Every process of one Unix user, wherever it hangs in the process tree (a detached job's borg is
 * re-parented to init, out of reach of descendantsOf).
 */
export function processesOfUser(uid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}`).uid === uid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}
