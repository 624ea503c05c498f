// Figures for the terminal: medians, fixed-width tables, PASS/MISS against a target, and the
// header every bench prints (what was measured, on which code, on what machine).
import { cpus } from 'node:os';
import { run } from '../../infra/subprocess.js';
import { loadAverage } from './procfs.js';
import { projectRoot } from './paths.js';

export const print = (line = '') => process.stdout.write(`${line}\n`);
/** Progress lines go to stderr, so stdout holds only the report. */
export const note = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

export function median(v: number[]): number {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
export const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '–');
export const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');
export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export function table(head: string[], rows: string[][], align?: Array<'l' | 'r'>): void {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (s: string, i: number) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? s.padEnd(w[i]!) : s.padStart(w[i]!));
  print(`  ${head.map(cell).join('  ')}`);
  print(`  ${w.map((n) => '-'.repeat(n)).join('  ')}`);
  for (const r of rows) print(`  ${r.map(cell).join('  ')}`);
}

export function verdict(value: number, target: number): 'PASS' | 'MISS' {
  return value <= target ? 'PASS' : 'MISS';
}

export interface RunInfo {
  commit: string;
  dirty: boolean;
  node: string;
  borg: string;
  cpus: number;
  load1AtStart: number;
  startedAt: string;
}

export async function runInfo(): Promise<RunInfo> {
  const git = async (args: string[]) => (await run('git', ['-C', projectRoot, ...args])).stdout.toString().trim();
  const borg = (await run('borg', ['--version'])).stdout.toString().trim();
  return {
    commit: (await git(['rev-parse', '--short', 'HEAD'])) || '?',
    dirty: (await git(['status', '--porcelain', '--untracked-files=no'])).length > 0,
    node: process.version,
    borg,
    cpus: cpus().length,
    load1AtStart: loadAverage(),
    startedAt: new Date().toISOString(),
  };
}

export function printHeader(title: string, info: RunInfo): void {
  print(title);
  print(`  ${info.startedAt}, commit ${info.commit}${info.dirty ? ' (with uncommitted changes in the working tree)' : ''}, node ${info.node}, ${info.borg}, ${info.cpus} CPUs, load average ${info.load1AtStart.toFixed(2)} at start`);
}
