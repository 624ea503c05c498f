// The fault suite's machinery (issue 22), shared by test/integration/faults-*.test.ts and
// `npm run chaos` (bench/chaos.ts): a stack with a client whose backup runs long enough to be
// hit mid-stream, the faults themselves, and the observations after each — how the job ended
// and how long it took, how many borg processes and proxy sessions ran for it at any moment,
// whether the repository holds every archive and passes `borg check` with the real key after a
// compact (no orphaned objects), whether a lock was left behind, and whether the next backup runs.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../../db/schema.js';
import { requireAccount } from '../../infra/accounts.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { createApiToken } from '../../services/auth.js';
import { addClient } from '../../services/clients.js';
import { getJob, jobLogTail, startBackup } from '../../services/jobs.js';
import { startCheck, startPrune } from '../../services/policy-jobs.js';
import { getRepository } from '../../services/repositories.js';
import { startRestore } from '../../services/restores.js';
import { addUser } from '../../services/users.js';
import { archiveNames, backup, describeJob, waitForJob } from './backup.js';
import { createClientHost, type ClientHost } from './client-host.js';
import { descendants, isBorg, isProxySession, processTable, withoutForks, type ProcInfo } from './proc-table.js';
import type { Restartable } from './private-services.js';
import { startClientSshd, type ClientSshd } from './sshd.js';
import { launchStack, type Stack } from './stack-launcher.js';
import { startWeb } from './web.js';
import { freeze, pollWeb, staleLocks, treeHashes, untilProcesses, type PolledWeb } from './fault-probes.js';

/** Upload rate of the slow client's borg (KiB/s): its backup of 48 MiB lasts ~16 s. */
const uploadKiBs = 3072;
// Many files: borg reports progress per file, which tells when the upload is well under way.
const slowFiles = 96;
const slowFileBytes = 512 * 1024;

export interface FaultRig {
  stack: Stack;
  clientSshd: ClientSshd;
  host: ClientHost;
  /** Private servers the stack runs on, when the rig was asked for them (stop/start faults). */
  postgres?: Restartable;
  redis?: Restartable;
  temporal?: Restartable;
  /** The web process, with an API token, when asked for (PostgreSQL and Redis blips). */
  web?: PolledWeb;
  repoCount: number;
  /** Repository paths by id, for faults that find a job's processes by its repository. */
  repoPaths: Map<string, string>;
  /** Seeds the slow client's files anew before each fault, so that each backup uploads data. */
  round: number;
}

export interface RigOptions {
  temporal: { address: string; namespace: string };
  temporalServer?: Restartable;
  postgres?: Restartable & { url: string };
  redis?: Restartable & { url: string };
  web?: boolean;
}

/**
 * A stack with one client host and two clients on it: `fast` (a small tree, for the archive
 * every repository holds before a fault) and `slow` (48 MiB of fresh random data per fault,
 * uploaded at a bounded rate by a borg wrapper, so that a fault lands mid-stream).
 */
export async function startFaultRig(o: RigOptions): Promise<FaultRig> {
  // createTestDatabase makes the stack's database on the server of DATABASE_URL.
  if (o.postgres) process.env.DATABASE_URL = o.postgres.url;
  const stack = await launchStack({ temporal: o.temporal, env: o.redis ? { REDIS_URL: o.redis.url } : {}, sshdLogLevel: 'INFO' });
  const clientSshd = await startClientSshd({ logLevel: 'INFO' });
  const host = await createClientHost({
    authorizedKeys: [stack.serverPublicKey],
    tree: {
      'fast/a.txt': 'alpha\n',
      'fast/b.bin': { type: 'file', size: 256 * 1024, seed: 'fast' },
      // Everything but `borg --version` at a bounded upload rate; exec keeps the pid run.sh records.
      'slow-borg': { type: 'file', mode: 0o755, content: ['#!/bin/sh', 'case "$1" in', `  create) exec borg --upload-ratelimit ${uploadKiBs} "$@" ;;`, 'esac', 'exec borg "$@"', ''].join('\n') },
    },
  });
  await addClient(stack.deps, { name: 'fast', host: clientSshd.host, port: clientSshd.port, user: host.username, paths: [host.path('fast')] });
  await addClient(stack.deps, { name: 'slow', host: clientSshd.host, port: clientSshd.port, user: host.username, paths: [host.path('slow')], borgPath: host.path('slow-borg'), compression: 'none' });
  mkdirSync(`${stack.dataDir}-repos`, { recursive: true, mode: 0o711 });
  const rig: FaultRig = { stack, clientSshd, host, postgres: o.postgres, redis: o.redis, temporal: o.temporalServer, repoCount: 0, repoPaths: new Map(), round: 0 };
  if (o.web) {
    const password = 'fault suite admin password 1';
    const web = await startWeb(stack, password);
    const { user } = await addUser(stack.deps, { username: 'faults', role: 'viewer', password });
    const api = await createApiToken(stack.deps, { user, via: 'token' }, { name: 'faults' });
    rig.web = { url: web.url, token: api.token, alive: () => web.proc.exitCode === null && web.proc.signalCode === null };
  }
  return rig;
}

/** The job kinds a fault can hit: a backup, a restore (client side), a prune or check (server side). */
export type JobKind = 'backup' | 'restore' | 'prune' | 'check';

/** What a fault does to the rig while `job` runs; it brings back what it stopped before returning. */
export interface Fault {
  name: string;
  /** The job kinds it applies to (default: backup only); a client-side fault cannot hit a prune. */
  kinds?: JobKind[];
  /** How the job must end: after a retry or re-attach, or failed with an error matching `error`. */
  expect: 'succeeded' | 'failed';
  /** Where another kind must end otherwise (e.g. a check whose borg was killed must not pass). */
  expectFor?: Partial<Record<JobKind, 'succeeded' | 'failed'>>;
  error?: RegExp;
  /** The error where another kind fails otherwise (e.g. a restore's full target is not the repository's disk). */
  errorFor?: Partial<Record<JobKind, RegExp>>;
  /** The job must have ended this long after the fault. */
  budgetMs: number;
  /** The rig must have been started with these. */
  needs?: Array<'postgres' | 'redis' | 'temporal' | 'web'>;
  /** The repository on a filesystem of its own (disk-full): returns its path and how to grow it back. */
  repository?: (rig: FaultRig, name: string, kind: JobKind) => Promise<{ path: string; afterwards: () => Promise<void> }>;
  /** A restore's target on the client on a filesystem of its own: its path and how to remove it. */
  restoreTarget?: (rig: FaultRig, name: string) => Promise<{ path: string; afterwards: () => Promise<void> }>;
  inject(rig: FaultRig, job: Job): Promise<void>;
}

export interface FaultOutcome {
  fault: string;
  kind: JobKind;
  state: Job['state'] | 'still running';
  error?: string | null;
  /** From the fault to the job's end (ms). */
  recoverMs: number;
  /** How the job got over it, from its log (e.g. "borg create restarted on the client"). */
  recovery: string;
  maxBorg: number;
  maxProxy: number;
  checks: {
    /** The job ended as expected within its budget. */
    outcome: boolean;
    single: boolean;
    archivesKept: boolean;
    borgCheck: boolean;
    noStaleLock: boolean;
    clientClean: boolean;
    nextBackup: boolean;
    /** Web and API answered (any HTTP status) throughout; true where not observed. */
    webAnswered: boolean;
  };
  /** Why a check failed, one line each. */
  notes: string[];
}

export const passed = (o: FaultOutcome) => Object.values(o.checks).every(Boolean);

async function newRepository(rig: FaultRig, fault: Fault, kind: JobKind): Promise<{ name: string; path: string; afterwards: () => Promise<void> }> {
  const name = `r${++rig.repoCount}`;
  const placed = fault.repository ? await fault.repository(rig, name, kind) : { path: `${rig.stack.dataDir}-repos/${name}`, afterwards: () => Promise.resolve() };
  const r = await rig.stack.cli(['repo', 'add', name, '--path', placed.path]);
  if (r.code !== 0) throw new Error(`repo add failed: ${r.err}`);
  rig.repoPaths.set((await getRepository(rig.stack.deps, name)).id, placed.path);
  return { name, path: placed.path, afterwards: placed.afterwards };
}

function freshSlowData(rig: FaultRig): void {
  rig.round++;
  rmSync(rig.host.path('slow'), { recursive: true, force: true });
  const tree: Record<string, { type: 'file'; size: number; seed: string }> = {};
  for (let i = 0; i < slowFiles; i++) tree[`slow/f${i}.bin`] = { type: 'file', size: slowFileBytes, seed: `r${rig.round}-f${i}-${process.pid}` };
  rig.host.writeTree(tree);
}

/**
 * The client's `borg create` (or `borg extract`) processes of the job. A child of one of them with
 * the same command line is that borg caught between fork and exec (of ssh or the passcommand), not
 * a second borg.
 */
export function clientBorgs(rig: FaultRig, jobId: string, table = processTable(), subcommand: 'create' | 'extract' = 'create'): ProcInfo[] {
  return withoutForks(table.filter((p) => p.uid === rig.host.uid && isBorg(p, subcommand) && p.argv.some((a) => a.includes(jobId))));
}

/** The server's own borg commands on a repository (prune, compact, check, list), not their borg serve. */
export function serverBorgs(repoPath: string, table = processTable()): ProcInfo[] {
  return withoutForks(table.filter((p) => ['check', 'prune', 'compact', 'list'].some((sub) => isBorg(p, sub)) && !isBorg(p, 'serve') && p.argv.some((a) => a.endsWith(repoPath))));
}

/** Samples the process table: the most borg processes and proxy sessions seen at once for `jobId`. */
function sampleProcesses(rig: FaultRig, jobId: string, kind: JobKind, repoPath: string): { stop(): { maxBorg: number; maxProxy: number; seen?: string } } {
  let maxBorg = 0;
  let maxProxy = 0;
  // What ran at the first moment with more than one, so that a failure says which processes.
  let seen: string | undefined;
  const proxyAccount = requireAccount(rig.stack.config.accounts.proxy).uid;
  const sample = () => {
    const table = processTable();
    const borgs = kind === 'prune' || kind === 'check' ? serverBorgs(repoPath, table) : clientBorgs(rig, jobId, table, kind === 'restore' ? 'extract' : 'create');
    // Only one job of this stack runs at a time: every proxy session below this stack's sshd is its.
    const sshd = rig.stack.sshd.pid;
    const proxies = sshd ? withoutForks(descendants(table, sshd).filter((p) => p.uid === proxyAccount && isProxySession(p))) : [];
    maxBorg = Math.max(maxBorg, borgs.length);
    maxProxy = Math.max(maxProxy, proxies.length);
    if (!seen && (borgs.length > 1 || proxies.length > 1)) {
      seen = [...borgs, ...proxies].map((p) => `${p.pid} (parent ${p.ppid}, ${p.state}): ${p.argv.slice(0, 3).join(' ')}`).join('; ');
    }
  };
  const timer = setInterval(sample, 100);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { maxBorg, maxProxy, seen };
    },
  };
}

/** Mid-stream: borg has been uploading for a moment (it reports progress per file). */
async function untilUploading(rig: FaultRig, jobId: string): Promise<void> {
  const { stack } = rig;
  const borgLog = rig.host.path('.borgcube', 'jobs', jobId, 'borg.log');
  await waitFor(
    'the backup to be uploading',
    async () => {
      const j = await getJob(stack.deps, jobId);
      if (j.state !== 'running' && j.state !== 'queued') throw new Error(`the backup ended ${j.state} before the fault: ${j.error}`);
      return j.phase === 'run' && existsSync(borgLog) && statSync(borgLog).size > 4096 && clientBorgs(rig, jobId).length > 0;
    },
    { timeoutMs: 120_000, intervalMs: 200 },
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await describeJob(stack, jobId)}`);
  });
}

/**
 * Mid-extract: borg extract has connected, read the archive's items and reported its progress in
 * a file (its progress line names the file it writes), so its data is streaming; returns its
 * pids at that moment.
 */
async function untilExtracting(rig: FaultRig, jobId: string, ended: () => Promise<boolean>): Promise<number[]> {
  const borgLog = rig.host.path('.borgcube', 'jobs', jobId, 'borg.log');
  // --log-json --progress: {"message": " 12.5% Extracting: <path>", …, "msgid": "extract", "type": "progress_percent", …}
  const listedFile = (line: string) => line.includes('"progress_percent"') && line.includes('"extract"') && line.includes('.bin"');
  return untilProcesses(
    'borg extract writing its first file',
    () => {
      const pids = clientBorgs(rig, jobId, processTable(), 'extract').map((p) => p.pid);
      return pids.length && existsSync(borgLog) && readFileSync(borgLog, 'utf8').split('\n').some(listedFile) ? pids : [];
    },
    ended,
  );
}

/** After the job: every archive still there, no orphans after a compact, no stale lock, a clean client, a next backup that runs. */
async function observeAfterwards(rig: FaultRig, repo: { name: string; path: string }, expected: string[], notes: string[], nextClient: 'slow' | 'fast' = 'slow') {
  const { stack } = rig;
  const names = await archiveNames(stack, repo.name).catch((err: Error) => (notes.push(err.message), [] as string[]));
  const archivesKept = expected.every((n) => names.includes(n));
  if (!archivesKept) notes.push(`archives ${JSON.stringify(names)}, expected ${JSON.stringify(expected)}`);
  const compact = await stack.cli(['borg', repo.name, '--', 'compact']);
  if (compact.code !== 0) notes.push(`borg compact: ${compact.err.trim().split('\n').pop()}`);
  const check = await stack.cli(['borg', repo.name, '--', 'check']);
  const borgCheck = check.code === 0 && !/orphaned/.test(check.err);
  if (!borgCheck) notes.push(`borg check (${check.code}): ${check.err.trim().split('\n').slice(-3).join(' | ')}`);
  const stale = staleLocks(repo.path);
  if (stale.length) notes.push(`stale lock: ${stale.join(', ')}`);
  const jobsDir = rig.host.path('.borgcube', 'jobs');
  const leftover = existsSync(jobsDir) ? readdirSync(jobsDir) : [];
  if (leftover.length) notes.push(`left on the client: ${leftover.join(', ')}`);
  let nextBackup = false;
  try {
    await backup(stack, nextClient, repo.name);
    nextBackup = true;
  } catch (err) {
    notes.push(`next backup: ${(err as Error).message.split('\n')[0]}`);
  }
  return { archivesKept, borgCheck, noStaleLock: stale.length === 0, clientClean: leftover.length === 0, nextBackup };
}

/** The job a fault hits, started once its repository holds what the kind needs. */
async function startJob(rig: FaultRig, kind: JobKind, repo: { name: string }, restoreTarget?: string): Promise<{ job: Job; expected: string[]; restoredFrom?: string }> {
  const { stack } = rig;
  const base = await backup(stack, 'fast', repo.name);
  if (kind === 'backup') {
    freshSlowData(rig);
    return { job: await startBackup(stack.deps, { client: 'slow', repository: repo.name, triggeredBy: 'test' }), expected: [base.archiveName!] };
  }
  if (kind === 'restore') {
    freshSlowData(rig);
    const src = await backup(stack, 'slow', repo.name);
    const job = await startRestore(stack.deps, { actor: 'cli:root', userId: null, role: 'admin' }, { archive: src.archiveName!, repository: repo.name, ...(restoreTarget ? { target: restoreTarget } : {}) });
    return { job, expected: [base.archiveName!, src.archiveName!], restoredFrom: rig.host.path('slow') };
  }
  // Three archives of `fast` (one policy keeps the day's last); a check reads all of them.
  const second = await backup(stack, 'fast', repo.name);
  const third = await backup(stack, 'fast', repo.name);
  if (kind === 'check') return { job: await startCheck(stack.deps, { repository: repo.name, verifyData: true, triggeredBy: 'test' }), expected: [base, second, third].map((j) => j.archiveName!) };
  const policy = `p-${repo.name}`;
  const added = await stack.cli(['policy', 'add', policy, '--client', 'fast', '--repo', repo.name, '--cron', 'none', '--keep-daily', '1']);
  if (added.code !== 0) throw new Error(`policy add failed: ${added.err}`);
  return { job: await startPrune(stack.deps, policy, 'test'), expected: [third.archiveName!] };
}

/**
 * Runs a job of `kind` into a fresh repository — a backup of the slow client, a restore of its
 * archive, a check with --verify-data or a prune — hits it with `fault` mid-job, and observes.
 * A restore's borg extract, and a prune's or check's borg on the server, are frozen (SIGSTOP)
 * while the fault lands and thawed after, so that the fault finds them running.
 */
export async function runFault(rig: FaultRig, fault: Fault, kind: JobKind = 'backup'): Promise<FaultOutcome> {
  const { stack } = rig;
  const notes: string[] = [];
  const repo = await newRepository(rig, fault, kind);
  const target = kind === 'restore' && fault.restoreTarget ? await fault.restoreTarget(rig, repo.name) : undefined;
  const { job, expected, restoredFrom } = await startJob(rig, kind, repo, target?.path);
  const expect = fault.expectFor?.[kind] ?? fault.expect;
  const expectError = fault.errorFor?.[kind] ?? fault.error;
  const sampler = sampleProcesses(rig, job.id, kind, repo.path);
  const ended = async () => !['running', 'queued'].includes((await getJob(stack.deps, job.id)).state);
  let frozen: { thaw(): void } | undefined;
  if (kind === 'backup') {
    await untilUploading(rig, job.id);
    await sleep(2000);
  } else if (kind === 'restore') {
    // Not merely started: borg's Python takes seconds to start on a loaded machine, and a fault
    // landing before borg has connected hits no proxy session, no SSH link and no read at all.
    await untilProcesses('borg extract on the client', () => clientBorgs(rig, job.id, processTable(), 'extract').map((p) => p.pid), ended);
    frozen = freeze(await untilExtracting(rig, job.id, ended));
  } else {
    frozen = freeze(await untilProcesses(`borg ${kind} on the server`, () => serverBorgs(repo.path).map((p) => p.pid), ended));
  }
  const web = pollWeb(rig.web);
  const t0 = Date.now();
  try {
    await fault.inject(rig, job);
  } finally {
    // Also when the fault could not land: a job left frozen would run on into the next fault's.
    frozen?.thaw();
  }
  let done: Job | undefined;
  try {
    done = await waitForJob(stack, job.id, fault.budgetMs + 60_000);
  } catch (err) {
    notes.push((err as Error).message.split('\n')[0]!);
  }
  const recoverMs = Date.now() - t0;
  const webProblems = await web.stop();
  const counts = sampler.stop();
  let outcomeOk =
    done !== undefined && done.state === expect && recoverMs <= fault.budgetMs + 1000 && (expect === 'succeeded' || (!!done.error && (!expectError || expectError.test(done.error))));
  if (!outcomeOk) notes.push(`ended ${done?.state ?? 'still running'} (${done?.error ?? ''}) after ${Math.round(recoverMs / 1000)} s; expected ${expect} within ${fault.budgetMs / 1000} s\n${await describeJob(stack, job.id)}`);
  if (restoredFrom && done?.state === 'succeeded') {
    // What was restored is the client's very files, however often borg extract ran.
    const target = join(done.restore!.target, relative('/', restoredFrom));
    const [want, got] = [treeHashes(restoredFrom), treeHashes(target)];
    const same = want.size > 0 && want.size === got.size && [...want].every(([k, v]) => got.get(k) === v);
    if (!same) notes.push(`restored ${got.size} files into ${target}, ${[...want].filter(([k, v]) => got.get(k) !== v).length} of ${want.size} differ from the source`);
    outcomeOk &&= same;
    rmSync(done.restore!.target, { recursive: true, force: true });
  }
  if (counts.maxBorg > 1 || counts.maxProxy > 1) notes.push(`at one moment ${counts.maxBorg} borg and ${counts.maxProxy} proxy sessions ran for the job: ${counts.seen}`);
  for (const p of webProblems) notes.push(`web: ${p}`);
  await repo.afterwards();
  await target?.afterwards();

  const after = await observeAfterwards(rig, repo, [...expected, ...(kind === 'backup' && done?.state === 'succeeded' ? [done.archiveName!] : [])], notes, kind === 'prune' || kind === 'check' ? 'fast' : 'slow');
  const logLines = await jobLogTail(stack.deps, job.id, 1000);
  const runs = logLines.filter((l) => /^borg (create|extract) (re)?started on the client/.test(l.message)).length;
  const recovery = [
    ...(runs > 1 ? [`borg ran ${runs}×`] : []),
    ...logLines.filter((l) => /worker restarted|gone from the client/.test(l.message) || l.level === 'error').map((l) => l.message.slice(0, 70)),
  ];
  return {
    fault: fault.name,
    kind,
    state: done?.state ?? 'still running',
    error: done?.error,
    recoverMs,
    recovery: [...new Set(recovery)].join('; ') || '-',
    ...counts,
    checks: {
      outcome: outcomeOk,
      single: counts.maxBorg <= 1 && counts.maxProxy <= 1,
      ...after,
      webAnswered: webProblems.length === 0,
    },
    notes,
  };
}
