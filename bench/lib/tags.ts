// How the benchmarks mark what they create on the machine (as the test harness does, with its
// own prefixes so neither sweeps the other's): Unix users `bcbench-…` whose GECOS names the owning
// pid, temp folders `/tmp/borgcube-bench-<kind>-…` with an owner.json, databases
// `borgcube_bench_<pid>_<hex>`. A run first removes the leftovers of runs whose process is gone
// (SIGKILL, a crash), so nothing accumulates even when a cleanup could not run.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { lookupAccount } from '../../infra/accounts.js';
import { run } from '../../infra/subprocess.js';
import { killUserProcesses } from './procfs.js';

export const userPrefix = 'bcbench-';
const userComment = (owner = process.pid) => `borgcube-bench owner=${owner}`;
const userCommentPattern = /^borgcube-bench owner=(\d+)$/;
const dirPrefix = 'borgcube-bench-';
const databasePattern = /^borgcube_bench_(\d+)_[0-9a-f]+$/;

interface OwnerRecord {
  owner: number;
  /** Processes started for this folder; `marker` must appear in their command line (pid reuse). */
  processes: Array<{ pid: number; marker: string }>;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function newUserName(): string {
  return `${userPrefix}${randomBytes(4).toString('hex')}`;
}

export { userComment };

export function newDatabaseName(): string {
  return `borgcube_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A fresh tagged temp folder (0700) owned by this process. */
export function makeTaggedDir(kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${dirPrefix}${kind}-`));
  writeFileSync(join(dir, 'owner.json'), JSON.stringify({ owner: process.pid, processes: [] } satisfies OwnerRecord));
  return dir;
}

function readOwner(dir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

/** Notes a process started for `dir`, so that a later sweep ends it if this run dies first. */
export function recordProcess(dir: string, pid: number, marker: string): void {
  const rec = readOwner(dir) ?? { owner: process.pid, processes: [] };
  rec.processes.push({ pid, marker });
  writeFileSync(join(dir, 'owner.json'), JSON.stringify(rec));
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

export function gecos(name: string): string | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return f[4];
  }
  return undefined;
}

/** Removes a bench user (only one this tool tagged), its processes and its home. Idempotent. */
export async function removeBenchUser(name: string): Promise<void> {
  if (!name.startsWith(userPrefix)) throw new Error(`${name} is not a bench user`);
  const a = lookupAccount(name);
  if (!a) return;
  if (!userCommentPattern.test(gecos(name) ?? '')) throw new Error(`${name} is not tagged as a bench user; leaving it alone`);
  await killUserProcesses(a.uid);
  const r = await run('userdel', ['--remove', name]);
  if (r.code !== 0 && r.code !== 6 && r.code !== 12) throw new Error(`userdel ${name} failed (exit ${r.code}): ${r.stderr.toString().trim()}`);
  if (a.home.startsWith('/home/') && a.home.includes(name)) rmSync(a.home, { recursive: true, force: true });
}

export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  if (!databasePattern.test(name)) throw new Error(`${name} is not a bench database`);
  const u = new URL(serverUrl);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    await client.query(`drop database if exists "${name}" with (force)`);
  } finally {
    await client.end();
  }
}

/** Removes what earlier bench runs whose process is gone left behind; returns one line each. */
export async function sweepLeftovers(databaseUrl: string): Promise<string[]> {
  const removed: string[] = [];
  for (const d of readdirSync(tmpdir()).filter((n) => n.startsWith(dirPrefix))) {
    const path = join(tmpdir(), d);
    const owner = readOwner(path);
    if (!owner || isAlive(owner.owner)) continue;
    for (const p of owner.processes) {
      if (!cmdlineOf(p.pid).includes(p.marker)) continue;
      for (const target of [-p.pid, p.pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          /* not a group leader, or gone */
        }
      }
      removed.push(`process ${p.pid}`);
    }
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    const m = userCommentPattern.exec(f[4] ?? '');
    if (!f[0]?.startsWith(userPrefix) || !m || isAlive(Number(m[1]))) continue;
    await removeBenchUser(f[0]);
    removed.push(`user ${f[0]}`);
  }
  const u = new URL(databaseUrl);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  let stale: string[];
  try {
    const r = await client.query<{ datname: string }>("select datname from pg_database where datname like 'borgcube\\_bench\\_%'");
    stale = r.rows.map((row) => row.datname).filter((n) => {
      const m = databasePattern.exec(n);
      return m && !isAlive(Number(m[1]));
    });
  } finally {
    await client.end();
  }
  for (const name of stale) {
    await dropDatabase(databaseUrl, name);
    removed.push(`database ${name}`);
  }
  return removed;
}
