// Summaries of V8 CPU profiles (`node --cpu-prof`): self time per function, several profiles
// merged (e.g. one per proxy process), the top entries with their share of the sampled time.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { projectRoot } from './paths.js';
import { f1, note, print, table } from './report.js';
import type { BenchStack } from './stack.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) per function across the given profile files, and the total sampled time. */
export function selfTimes(files: string[]): { byFunction: Map<string, number>; totalMs: number; idleMs: number } {
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i]!);
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      if (!n) continue;
      const fn = n.callFrame.functionName || '(anonymous)';
      if (fn === '(idle)') {
        idleMs += ms;
        continue;
      }
      totalMs += ms;
      const url = n.callFrame.url.replace(/^file:\/\//, '');
      const where = url ? `${url.startsWith(projectRoot) ? relative(projectRoot, url) : url.replace(/^.*node_modules\//, '')}:${n.callFrame.lineNumber + 1}` : '';
      const key = where ? `${fn} ${where}` : fn;
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    }
  }
  return { byFunction, totalMs, idleMs };
}

export function profilesIn(dir: string, filter: (name: string) => boolean = () => true): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith('.cpuprofile') && filter(n))
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

export function printProfileSummary(title: string, files: string[], top = 20): void {
  if (!files.length) {
    print(`${title}: no profiles`);
    return;
  }
  const { byFunction, totalMs, idleMs } = selfTimes(files);
  print(`${title}: ${files.length} profile(s), ${f1(totalMs / 1000)} s sampled on CPU, ${f1(idleMs / 1000)} s idle`);
  const rows = [...byFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => [f1(ms), `${f1((100 * ms) / totalMs)}%`, k]);
  table(['self ms', 'share', 'function'], rows, ['r', 'r', 'l']);
}

/** Stops the worker and the repository service (they write their profiles on exit) and summarises. */
export async function printServiceProfiles(stack: Pick<BenchStack, 'worker' | 'storage'>, dirs: { service: string; worker: string }): Promise<void> {
  note('stopping the worker and the repository service to collect their profiles…');
  await stack.worker.stop();
  await stack.storage.stop();
  print();
  printProfileSummary('Repository service (storage-main), main thread', profilesIn(dirs.service, (n) => /\.0\.\d+\.cpuprofile$/.test(n)));
  print();
  printProfileSummary('Repository service, crypto worker threads', profilesIn(dirs.service, (n) => !/\.0\.\d+\.cpuprofile$/.test(n)));
  print();
  printProfileSummary('Worker (workflows + client activities), all threads', profilesIn(dirs.worker));
  print(`profiles: ${dirs.service}/..`);
}
