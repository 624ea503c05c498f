// Server-side maintenance of a repository (storage host's task queue): `borg prune` + `borg
// compact` with a policy's retention rules, and `borg check`. Both run borg as the storage account
// with the real key (infra/borg-cli.ts), inside the repository service's exclusive section: running
// backups finish their current use, new ones wait, the service's `borg serve` lets go of the lock,
// and the next user reopens the repository and reloads the manifest and chunk indexes.
//
// Prune judges archives by the time in the manifest entry, which the repository service stamps
// with the server's clock (proxy/storage/sessions/backup-manifest.ts); a client cannot make old archives survive or
// new ones expire. It touches one client's archives only: the glob matches the server-built names
// of that client (`<name>-YYYY-MM-DDTHH-MM-SS[-N][.checkpoint[.N]]`), and before anything is deleted
// every name the glob selects is checked against the exact shape, so `web` never prunes `web-2`.
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import { liveArchiveRows, markArchivesDeleted, markArchivesDeletedByBorgId } from '../db/queries/archives.js';
import { findClientById } from '../db/queries/clients.js';
import * as jobsQ from '../db/queries/jobs.js';
import { findPolicyById, recordRepositoryCheck } from '../db/queries/policies.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import type { JobStats, RetentionRules } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import type { StorageApi } from '../proxy/storage/api.js';
import { beating, borgInvocation, cancelledOr, exclusively, failIfDiskFull, JobLog, runLoggedBorg } from './server-borg.js';

export interface MaintenanceActivityDeps {
  db: Db;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  storage: StorageApi;
  /** Live log lines for viewers of the job (optional: the rows in PostgreSQL are the record). */
  events?: EventPublisher;
  /** Heartbeat period while borg runs or the repository is busy (tests shorten it). */
  heartbeatMs?: number;
}

export interface PruneResult {
  pruned: Array<{ name: string; id: string }>;
  kept: number;
  stats: JobStats;
}

export interface CheckSummary {
  result: 'ok' | 'failed';
  exitCode: number | null;
  errorCount: number;
  /** The first problems borg reported. */
  errors: string[];
  durationMs: number;
  stats: JobStats;
}

/** Problems kept per check row; the job's log has them all. */
const MAX_CHECK_ERRORS = 100;

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested in maintenance.test.ts)

const nameRe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * borg's `--glob-archives` pattern for one client's archives (borg/shellpattern.py: `*` is any run
 * of characters, `[0-9]` a digit; `.`, `-` and `_` are literal). The digits right after
 * `<name>-` keep `web` away from `web-2` (whose archives continue `web-2-2…`).
 */
export function clientArchiveGlob(clientName: string): string {
  if (!nameRe.test(clientName)) throw new Error(`client name ${JSON.stringify(clientName)} cannot be used in an archive pattern`);
  const d = '[0-9]';
  return `${clientName}-${d.repeat(4)}-${d.repeat(2)}-${d.repeat(2)}T${d.repeat(2)}-${d.repeat(2)}-${d.repeat(2)}*`;
}

/** The exact shape of a server-built archive name of this client (activities/jobs.ts archiveNameFor). */
export function clientArchiveRegex(clientName: string): RegExp {
  const esc = clientName.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  return new RegExp(`^${esc}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}(?:-\\d+)?(?:\\.checkpoint(?:\\.\\d+)?)?$`);
}

/** borg prune's --keep-* options for a policy's rules; empty when the policy keeps everything. */
export function retentionArgs(r: RetentionRules): string[] {
  const out: string[] = [];
  if (r.keepWithin) {
    if (!/^[1-9]\d{0,5}[Hdwmy]$/.test(r.keepWithin)) throw ApplicationFailure.nonRetryable(`keep-within ${JSON.stringify(r.keepWithin)} is not an interval like 48H, 7d, 4w, 6m or 1y`, 'PolicyInvalid');
    out.push('--keep-within', r.keepWithin);
  }
  for (const rule of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    const n = r[rule];
    if (n === undefined || n === null) continue;
    if (!Number.isInteger(n) || n < 1) throw ApplicationFailure.nonRetryable(`keep-${rule} must be a positive integer`, 'PolicyInvalid');
    out.push(`--keep-${rule}`, String(n));
  }
  return out;
}

export type PruneListLine = { action: 'prune' | 'keep'; name: string; id: string; rule?: string };

/**
 * One line of `borg prune --list` (archiver.do_prune: `"{message:<40} {archive}"` with
 * format_archive = `"%-36s %s [%s]" % (name, time, id hex)`), e.g.
 * `Pruning archive (1/3):                   web-2024-01-01T00-00-00 Mon, 2024-01-01 00:00:00 [ab…]`.
 */
export function parsePruneListLine(message: string): PruneListLine | null {
  const m = /^(Pruning archive \(\d+\/\d+\):|Would prune:|Keeping archive \(rule: ([^)]*)\):|Keeping checkpoint archive:)\s+(\S+)\s.*\[([0-9a-f]{64})\]\s*$/.exec(message);
  if (!m) return null;
  const prune = m[1]!.startsWith('Pruning') || m[1]!.startsWith('Would');
  return { action: prune ? 'prune' : 'keep', name: m[3]!, id: m[4]!, rule: m[2] };
}

async function loadJob(db: Db, jobId: string, kind: 'prune' | 'check') {
  const job = await jobsQ.findJob(db, jobId);
  if (!job || job.kind !== kind) throw ApplicationFailure.nonRetryable(`${kind} job ${jobId} does not exist`, 'JobGone');
  if (job.state !== 'running') throw ApplicationFailure.nonRetryable(`job ${jobId} already ended (${job.state})`, 'JobGone');
  const repo = await findRepositoryById(db, job.repositoryId);
  if (!repo) throw ApplicationFailure.nonRetryable('the repository of this job was removed', 'JobGone');
  return { job, repo };
}

/**
 * `borg prune` of the job's client with its policy's rules, then `borg compact`; the pruned
 * archives are marked deleted in the archives table and the repository's figures refreshed.
 */
async function pruneArchives(deps: MaintenanceActivityDeps, jobId: string): Promise<PruneResult> {
  const { db, log } = deps;
  const { job, repo } = await loadJob(db, jobId, 'prune');
  const policy = job.policyId ? await findPolicyById(db, job.policyId) : undefined;
  if (!policy) throw ApplicationFailure.nonRetryable('the policy of this prune was removed', 'JobGone');
  const client = job.clientId ? await findClientById(db, job.clientId) : undefined;
  if (!client) throw ApplicationFailure.nonRetryable('the client of this prune was removed', 'JobGone');
  const jobLog = await JobLog.open(deps, jobId);
  const rules = retentionArgs(policy.retention);
  if (rules.length === 0) {
    await jobLog.own(`policy ${policy.name} has no retention rules: every archive is kept`);
    await jobLog.flush();
    return { pruned: [], kept: 0, stats: { pruned: 0, kept: 0 } };
  }
  const glob = clientArchiveGlob(client.name);
  // prune_split buckets archives by local time: the policy's time zone decides what a "day" is.
  const inv = await borgInvocation(deps, repo, { TZ: policy.timezone });
  await jobLog.own(`pruning archives of client ${client.name} in ${repo.name} (${glob}) with ${rules.join(' ')} in time zone ${policy.timezone}`);
  await jobLog.flush();
  const started = Date.now();

  const outcome = await beating(deps.heartbeatMs, () =>
    exclusively(deps.storage, repo.id, async () => {
      // Checkpoints too: prune considers them (archiver.do_prune, consider_checkpoints=True).
      const listed = await runLoggedBorg(inv, ['list', '--log-json', '--short', '--consider-checkpoints', '--glob-archives', glob, repo.path], jobLog);
      cancelledOr(listed, 'borg list');
      await failIfDiskFull(listed, deps.config.storageHost, jobLog);
      if (listed.code !== 0) throw new Error(`borg list failed with exit code ${listed.code}`);
      refuseForeignArchives(client.name, listed.stdout.toString('utf8').split('\n').filter(Boolean));
      const busy = await restoredArchivesPruneWouldTake(deps, inv, repo, [...rules, '--glob-archives', glob], jobLog);
      if (busy) {
        await jobLog.own(`nothing pruned this time: ${busy}; the next prune applies the rules`);
        return { pruned: [], kept: 0 };
      }
      const pruned: PruneResult['pruned'] = [];
      let kept = 0;
      const r = await runLoggedBorg(inv, ['prune', '--list', '--log-json', '--glob-archives', glob, ...rules, repo.path], jobLog, (l) => {
        if (l.kind !== 'log') return;
        const p = parsePruneListLine(l.message);
        if (p?.action === 'prune') pruned.push({ name: p.name, id: p.id });
        else if (p) kept++;
      });
      cancelledOr(r, 'borg prune');
      await failIfDiskFull(r, deps.config.storageHost, jobLog);
      if (r.code !== 0 && r.code !== 1) throw ApplicationFailure.nonRetryable(`borg prune failed with exit code ${r.code}`, 'BorgFailed');
      const c = await runLoggedBorg(inv, ['compact', '--log-json', repo.path], jobLog);
      cancelledOr(c, 'borg compact');
      // The prune itself committed: its archives are gone whatever the compact then says.
      if (c.code !== 0 && pruned.length) await markArchivesDeletedByBorgId(db, repo.id, pruned.map((p) => p.id), new Date());
      await failIfDiskFull(c, deps.config.storageHost, jobLog);
      if (c.code !== 0 && c.code !== 1) throw ApplicationFailure.nonRetryable(`borg compact failed with exit code ${c.code}`, 'BorgFailed');
      return { pruned, kept };
    }),
  );
  await markPruned(deps, repo.id, outcome.pruned.map((p) => p.id));

  const stats: JobStats = { pruned: outcome.pruned.length, kept: outcome.kept, durationSeconds: Math.round((Date.now() - started) / 1000) };
  await jobLog.own(`pruned ${outcome.pruned.length} archive(s), kept ${outcome.kept}; repository compacted`);
  await jobLog.flush();
  log.info({ job: jobId, repository: repo.name, client: client.name, ...stats }, 'prune finished');
  return { ...outcome, stats };
}

/**
 * A restore reads its archive while holding nothing of the repository (DESIGN §4.10), so a prune
 * must not take an archive a running restore reads: it would fail that restore halfway. Asks
 * `borg prune --dry-run` what it would take; returns why to skip, or undefined.
 */
async function restoredArchivesPruneWouldTake(deps: MaintenanceActivityDeps, inv: Awaited<ReturnType<typeof borgInvocation>>, repo: { id: string; path: string }, args: string[], jobLog: JobLog): Promise<string | undefined> {
  const restores = await jobsQ.runningRestoresOf(deps.db, repo.id);
  if (!restores.size) return undefined;
  const taken: string[] = [];
  const r = await runLoggedBorg(inv, ['prune', '--dry-run', '--list', '--log-json', ...args, repo.path], jobLog, (l) => {
    const p = l.kind === 'log' ? parsePruneListLine(l.message) : undefined;
    if (p?.action === 'prune' && restores.has(p.id)) taken.push(`archive ${p.name} is being restored by job ${restores.get(p.id)}`);
  });
  cancelledOr(r, 'borg prune --dry-run');
  await failIfDiskFull(r, deps.config.storageHost, jobLog);
  if (r.code !== 0 && r.code !== 1) throw ApplicationFailure.nonRetryable(`borg prune --dry-run failed with exit code ${r.code}`, 'BorgFailed');
  return taken.length ? taken.join('; ') : undefined;
}

/** Every name the glob selected must have the exact shape of this client's archives. */
function refuseForeignArchives(clientName: string, names: string[]): void {
  const exact = clientArchiveRegex(clientName);
  const foreign = names.filter((n) => !exact.test(n));
  if (!foreign.length) return;
  throw ApplicationFailure.nonRetryable(
    `the archive pattern of client ${clientName} also selects ${foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')}${foreign.length > 3 ? ' …' : ''}, which are not its archives; nothing was pruned`,
    'AmbiguousArchives',
  );
}

/** The archives table: what prune reported, then whatever else left the manifest meanwhile. */
async function markPruned(deps: MaintenanceActivityDeps, repositoryId: string, prunedIds: string[]): Promise<void> {
  const { db } = deps;
  const now = new Date();
  if (prunedIds.length) await markArchivesDeletedByBorgId(db, repositoryId, prunedIds, now);
  // Rows first, manifest second: a row inserted later belongs to an archive committed later.
  const rows = await liveArchiveRows(db, repositoryId);
  const { liveArchiveIds } = await deps.storage.refreshRepository(repositoryId);
  const gone = rows.filter((row) => !liveArchiveIds.has(row.borgId)).map((row) => row.id);
  if (gone.length) await markArchivesDeleted(db, gone, now);
}

/** `borg check` (repository and archives, optionally --verify-data); the result is recorded per repository. */
async function checkRepository(deps: MaintenanceActivityDeps, jobId: string, verifyData: boolean): Promise<CheckSummary> {
  const { db, log } = deps;
  const { repo } = await loadJob(db, jobId, 'check');
  const jobLog = await JobLog.open(deps, jobId);
  const inv = await borgInvocation(deps, repo);
  await jobLog.own(`checking repository ${repo.name}${verifyData ? ' with --verify-data' : ''}`);
  await jobLog.flush();
  const errors: string[] = [];
  let errorCount = 0;
  let startedAt = new Date();
  const r = await beating(deps.heartbeatMs, () =>
    exclusively(deps.storage, repo.id, async () => {
      startedAt = new Date();
      return runLoggedBorg(inv, ['check', '--log-json', ...(verifyData ? ['--verify-data'] : []), repo.path], jobLog, (l) => {
        if (l.kind !== 'log' || !['WARNING', 'ERROR', 'CRITICAL'].includes(l.level)) return;
        errorCount++;
        if (errors.length < MAX_CHECK_ERRORS) errors.push(l.message);
      });
    }),
  );
  cancelledOr(r, 'borg check');
  // A check that could not take the lock on a full disk found nothing: neither a result to record
  // nor damage to report.
  await failIfDiskFull(r, deps.config.storageHost, jobLog);
  const finishedAt = new Date();
  const durationMs = finishedAt.getTime() - startedAt.getTime();
  // do_check: 0 = no problems, 1 = problems found (EXIT_WARNING), 2 = could not check.
  const result = r.code === 0 ? 'ok' : 'failed';
  if (result === 'failed' && errorCount === 0) {
    errorCount = 1;
    errors.push(`borg check exited with ${r.code}`);
  }
  await recordRepositoryCheck(db, { repositoryId: repo.id, jobId, result, verifyData, exitCode: r.code, errors, errorCount, startedAt, finishedAt, durationMs });
  await jobLog.own(result === 'ok' ? `check passed in ${Math.round(durationMs / 1000)} s` : `check failed: ${errorCount} problem(s) reported`, result === 'ok' ? 'INFO' : 'ERROR');
  await jobLog.flush();
  log.info({ job: jobId, repository: repo.name, result, errorCount, durationMs }, 'check finished');
  return { result, exitCode: r.code, errorCount, errors: errors.slice(0, 5), durationMs, stats: { durationSeconds: Math.round(durationMs / 1000), checkErrors: errorCount, verifyData: verifyData ? 'yes' : 'no' } };
}

export function createMaintenanceActivities(deps: MaintenanceActivityDeps) {
  return {
    pruneArchives: ({ jobId }: { jobId: string }): Promise<PruneResult> => pruneArchives(deps, jobId),
    checkRepository: ({ jobId, verifyData }: { jobId: string; verifyData: boolean }): Promise<CheckSummary> => checkRepository(deps, jobId, verifyData),
  };
}

export type MaintenanceActivities = ReturnType<typeof createMaintenanceActivities>;
