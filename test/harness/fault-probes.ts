// Probes of the fault suite (faults.ts): the web console polled while a fault lands, stale borg
// locks, processes frozen mid-job, and the hashes of a restored tree.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { killPids } from './proc-table.js';

/** The web process the fault suite polls (faults.ts FaultRig.web). */
export interface PolledWeb {
  url: string;
  token: string;
  alive(): boolean;
}

/** Polls the web console and the API while a fault runs: every request must get an HTTP answer. */
export function pollWeb(web: PolledWeb | undefined): { stop(): Promise<string[]> } {
  if (!web) return { stop: () => Promise.resolve([]) };
  const problems: string[] = [];
  let running = true;
  const probe = async (path: string, headers: Record<string, string> = {}) => {
    try {
      const res = await fetch(`${web.url}${path}`, { headers, signal: AbortSignal.timeout(10_000), redirect: 'manual' });
      await res.arrayBuffer();
      if (res.status >= 500 && res.status !== 503) problems.push(`${path} answered ${res.status}`);
    } catch (err) {
      problems.push(`${path}: ${(err as Error).message}`);
    }
  };
  const loop = (async () => {
    while (running) {
      await Promise.all([probe('/healthz'), probe('/login'), probe('/api/v1/jobs', { authorization: `Bearer ${web.token}` })]);
      await sleep(500);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      if (!web.alive()) problems.push('the web process exited');
      return [...new Set(problems)].slice(0, 5);
    },
  };
}

/** A lock left by a process that is gone (borg's lock.exclusive holds `<host>.<pid>-<thread>`). */
export function staleLocks(repoPath: string): string[] {
  const lockDir = join(repoPath, 'lock.exclusive');
  if (!existsSync(lockDir)) return [];
  return readdirSync(lockDir).filter((entry) => {
    const pid = Number(/\.(\d+)-\d+$/.exec(entry)?.[1]);
    return !pid || !existsSync(`/proc/${pid}`);
  });
}

/** A process frozen mid-job (SIGSTOP) while a fault lands, so that a short job is still running then. */
export function freeze(pids: number[]): { thaw(): void } {
  killPids(pids, 'SIGSTOP');
  return { thaw: () => killPids(pids, 'SIGCONT') };
}

/** Polls until `find` returns processes (every 20 ms: a prune's borg runs for about a second). */
export async function untilProcesses(what: string, find: () => number[], jobEnded: () => Promise<boolean>, timeoutMs = 120_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  for (;;) {
    const pids = find();
    if (pids.length) return pids;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs / 1000} s`);
    if (++polls % 50 === 0 && (await jobEnded())) throw new Error(`the job ended before its ${what} was seen`);
    await sleep(20);
  }
}

/** Sha-256 of every file below `dir`, by path relative to it. */
export function treeHashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}
