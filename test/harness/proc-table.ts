// The machine's process table read from /proc, for fault tests that count what runs for a job
// (at most one borg and one proxy session per job) and pick the process to kill.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  uid: number;
  /** Single-letter state of /proc/<pid>/stat (Z for a zombie). */
  state: string;
  argv: string[];
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { pid, ppid: Number(rest[1]), uid, state: rest[0] ?? '?', argv };
  } catch {
    return undefined; // ended meanwhile
  }
}

/** Every live (non-zombie) process. */
export function processTable(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p && p.state !== 'Z' && p.state !== 'X') out.push(p);
  }
  return out;
}

/** The processes below `root` (not root itself) in `table`. */
export function descendants(table: ProcInfo[], root: number): ProcInfo[] {
  const children = new Map<number, ProcInfo[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/** `procs` without those whose parent is among them: a process seen between fork and exec. */
export function withoutForks(procs: ProcInfo[]): ProcInfo[] {
  const pids = new Set(procs.map((p) => p.pid));
  return procs.filter((p) => !pids.has(p.ppid));
}

/** A borg process running `subcommand` (python runs /usr/bin/borg, so argv[0] may be python). */
export function isBorg(p: ProcInfo, subcommand: string): boolean {
  const head = p.argv.slice(0, 2).map((a) => a.split('/').pop());
  return head.includes('borg') && p.argv.includes(subcommand);
}

/** The proxy's per-connection node process (not the sandbox's sh and unshare around it). */
export function isProxySession(p: ProcInfo): boolean {
  return (p.argv[0]?.split('/').pop() ?? '').startsWith('node') && (p.argv[1]?.endsWith('session/main.js') ?? false);
}

export function killPids(pids: number[], signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}
