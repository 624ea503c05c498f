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
import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { findClientById } from '../db/queries/clients.js';
import * as jobsQ from '../db/queries/jobs.js';
import { findRepositoryById, getRepositorySecrets, repositorySecretContext, type RepositoryRow } from '../db/queries/repositories.js';
import { archivesTable, policiesTable, repositoryChecksTable, type JobStats, type RetentionRules } from '../db/schema.js';
import { runBorg, type BorgInvocation } from '../infra/borg-cli.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import { serviceBorgDir } from '../infra/storage-layout.js';
import type { RepositoryService } from '../proxy/storage/service.js';
import { LineSplitter, parseBorgLine, type BorgLine } from './borg-output.js';
import { refreshRepositoryStats } from './storage.js';

export interface MaintenanceActivityDeps {
  db: Db;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  service: RepositoryService;
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

// ---------------------------------------------------------------------------------------------

/** A job's log as rows (and live events): our own lines and borg's --log-json lines. */
class JobLog {
  private batch: Array<Parameters<typeof jobsQ.insertLogLines>[1][number]> = [];
  private seq = 0;

  private constructor(
    private readonly deps: Pick<MaintenanceActivityDeps, 'db' | 'events'>,
    private readonly jobId: string,
  ) {}

  static async open(deps: Pick<MaintenanceActivityDeps, 'db' | 'events'>, jobId: string): Promise<JobLog> {
    const l = new JobLog(deps, jobId);
    l.seq = await jobsQ.lastLogSeq(deps.db, jobId);
    return l;
  }

  async own(message: string, level = 'INFO') {
    await this.line({ kind: 'log', level, type: 'borgcube', msgid: null, message, time: null });
  }

  async line(l: BorgLine | null) {
    if (!l || l.kind !== 'log') return;
    const row = { jobId: this.jobId, seq: ++this.seq, time: l.time ? new Date(l.time * 1000) : new Date(), level: l.level, type: l.type, msgid: l.msgid, message: l.message };
    this.batch.push(row);
    await this.deps.events
      ?.publish(this.jobId, { type: 'log', seq: row.seq, time: row.time.toISOString(), level: row.level, kind: row.type, msgid: row.msgid, message: row.message })
      .catch(() => {});
    if (this.batch.length >= 200) await this.flush();
  }

  async flush() {
    const rows = this.batch;
    this.batch = [];
    await jobsQ.insertLogLines(this.deps.db, rows);
  }
}

export function createMaintenanceActivities(deps: MaintenanceActivityDeps) {
  const { db, config, log, masterKey, service } = deps;

  async function loadJob(jobId: string, kind: 'prune' | 'check') {
    const job = await jobsQ.findJob(db, jobId);
    if (!job || job.kind !== kind) throw ApplicationFailure.nonRetryable(`${kind} job ${jobId} does not exist`, 'JobGone');
    if (job.state !== 'running') throw ApplicationFailure.nonRetryable(`job ${jobId} already ended (${job.state})`, 'JobGone');
    const repo = await findRepositoryById(db, job.repositoryId);
    if (!repo) throw ApplicationFailure.nonRetryable('the repository of this job was removed', 'JobGone');
    return { job, repo };
  }

  /** borg with the real key, as this (storage) account, with the service's own borg folders. */
  async function invocation(repo: RepositoryRow, env: Record<string, string> = {}): Promise<BorgInvocation> {
    const s = await getRepositorySecrets(db, repo.id);
    if (!s) throw ApplicationFailure.nonRetryable(`repository ${repo.name} has no key`, 'JobGone');
    const passphrase = masterKey.openText(s.passphraseSealed, repositorySecretContext.passphrase(repo.id));
    const keyText = masterKey.openText(s.keySealed, repositorySecretContext.key(repo.id));
    return { borgPath: config.borg.path, baseDir: serviceBorgDir(config), passphrase, keyFileText: repo.encryption.startsWith('keyfile') ? keyText : undefined, env };
  }

  /** Runs borg, turning its --log-json stderr into job log lines; cancellable; never throws on exit codes. */
  async function borg(inv: BorgInvocation, args: string[], jobLog: JobLog, onLine?: (l: BorgLine) => void) {
    const splitter = new LineSplitter();
    let pending = Promise.resolve();
    const feed = (lines: Array<{ line: string; truncated: boolean }>) => {
      for (const { line, truncated } of lines) {
        const parsed = parseBorgLine(line, truncated);
        if (!parsed) continue;
        onLine?.(parsed);
        pending = pending.then(() => jobLog.line(parsed));
      }
    };
    // The repository service let go of the lock, but a borg of an earlier attempt (this process
    // restarted under it) may still hold it: wait for it rather than fail.
    const [command, ...rest] = args;
    const r = await runBorg(inv, [command!, '--lock-wait', '600', ...rest], { signal: Context.current().cancellationSignal, onStderr: (c) => feed(splitter.push(c)), maxOutput: 64 * 1024 * 1024 });
    feed(splitter.flush());
    await pending;
    await jobLog.flush();
    return r;
  }

  /** Heartbeats while `fn` runs (waiting for the repository counts): a dead worker is noticed. */
  async function beating<T>(fn: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => heartbeat(), deps.heartbeatMs ?? 5000);
    try {
      heartbeat();
      return await fn();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * The repository to itself for `fn` (RepositoryHandle.exclusive). While it waits for running
   * sessions to end it holds back new ones; a cancelled job leaves that queue at once instead of
   * keeping its place until the running backups end.
   */
  async function exclusively<T>(handle: Awaited<ReturnType<RepositoryService['repository']>>, fn: () => Promise<T>): Promise<T> {
    const signal = Context.current().cancellationSignal;
    try {
      return await handle.exclusive(fn, signal);
    } catch (err) {
      if (signal.aborted && !(err instanceof CancelledFailure)) throw new CancelledFailure('cancelled while waiting for the repository');
      throw err;
    }
  }

  function cancelledOr(r: { code: number | null; signal: NodeJS.Signals | null }, what: string): void {
    if (Context.current().cancellationSignal.aborted) throw new CancelledFailure(`${what} cancelled`);
    // Killed from outside (OOM, shutdown): worth another attempt.
    if (r.code === null || r.code > 128) throw new Error(`${what} was killed (${r.signal ?? r.code})`);
  }

  return {
    /**
     * `borg prune` of the job's client with its policy's rules, then `borg compact`; the pruned
     * archives are marked deleted in the archives table and the repository's figures refreshed.
     */
    async pruneArchives({ jobId }: { jobId: string }): Promise<PruneResult> {
      const { job, repo } = await loadJob(jobId, 'prune');
      const policy = job.policyId ? (await db.select().from(policiesTable).where(eq(policiesTable.id, job.policyId)))[0] : undefined;
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
      const exact = clientArchiveRegex(client.name);
      // prune_split buckets archives by local time: the policy's time zone decides what a "day" is.
      const inv = await invocation(repo, { TZ: policy.timezone });
      const handle = await service.repository(repo.id);
      await jobLog.own(`pruning archives of client ${client.name} in ${repo.name} (${glob}) with ${rules.join(' ')} in time zone ${policy.timezone}`);
      await jobLog.flush();
      const started = Date.now();

      const outcome = await beating(() =>
        exclusively(handle, async () => {
          // Checkpoints too: prune considers them (archiver.do_prune, consider_checkpoints=True).
          const listed = await borg(inv, ['list', '--short', '--consider-checkpoints', '--glob-archives', glob, repo.path], jobLog);
          cancelledOr(listed, 'borg list');
          if (listed.code !== 0) throw new Error(`borg list failed with exit code ${listed.code}`);
          const names = listed.stdout.toString('utf8').split('\n').filter(Boolean);
          const foreign = names.filter((n) => !exact.test(n));
          if (foreign.length) {
            throw ApplicationFailure.nonRetryable(
              `the archive pattern of client ${client.name} also selects ${foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')}${foreign.length > 3 ? ' …' : ''}, which are not its archives; nothing was pruned`,
              'AmbiguousArchives',
            );
          }
          const pruned: PruneResult['pruned'] = [];
          let kept = 0;
          const r = await borg(inv, ['prune', '--list', '--log-json', '--glob-archives', glob, ...rules, repo.path], jobLog, (l) => {
            if (l.kind !== 'log') return;
            const p = parsePruneListLine(l.message);
            if (p?.action === 'prune') pruned.push({ name: p.name, id: p.id });
            else if (p) kept++;
          });
          cancelledOr(r, 'borg prune');
          if (r.code !== 0 && r.code !== 1) throw ApplicationFailure.nonRetryable(`borg prune failed with exit code ${r.code}`, 'BorgFailed');
          const c = await borg(inv, ['compact', '--log-json', repo.path], jobLog);
          cancelledOr(c, 'borg compact');
          if (c.code !== 0 && c.code !== 1) throw ApplicationFailure.nonRetryable(`borg compact failed with exit code ${c.code}`, 'BorgFailed');
          return { pruned, kept };
        }),
      );

      // The archives table: what prune reported, then whatever else left the manifest meanwhile.
      const now = new Date();
      if (outcome.pruned.length) {
        await db
          .update(archivesTable)
          .set({ deletedAt: now })
          .where(and(eq(archivesTable.repositoryId, repo.id), isNull(archivesTable.deletedAt), inArray(archivesTable.borgId, outcome.pruned.map((p) => p.id))));
      }
      // Rows first, manifest second: a row inserted later belongs to an archive committed later.
      const rows = await db.select({ id: archivesTable.id, borgId: archivesTable.borgId }).from(archivesTable).where(and(eq(archivesTable.repositoryId, repo.id), isNull(archivesTable.deletedAt)));
      const gone = await handle.use(async () => {
        const live = new Set([...handle.manifest.parsed.archives.values()].map((a) => a.id.toString('hex')));
        await refreshRepositoryStats(db, handle);
        return rows.filter((row) => !live.has(row.borgId)).map((row) => row.id);
      });
      if (gone.length) await db.update(archivesTable).set({ deletedAt: now }).where(inArray(archivesTable.id, gone));

      const stats: JobStats = { pruned: outcome.pruned.length, kept: outcome.kept, durationSeconds: Math.round((Date.now() - started) / 1000) };
      await jobLog.own(`pruned ${outcome.pruned.length} archive(s), kept ${outcome.kept}; repository compacted`);
      await jobLog.flush();
      log.info({ job: jobId, repository: repo.name, client: client.name, ...stats }, 'prune finished');
      return { ...outcome, stats };
    },

    /** `borg check` (repository and archives, optionally --verify-data); the result is recorded per repository. */
    async checkRepository({ jobId, verifyData }: { jobId: string; verifyData: boolean }): Promise<CheckSummary> {
      const { repo } = await loadJob(jobId, 'check');
      const jobLog = await JobLog.open(deps, jobId);
      const inv = await invocation(repo);
      const handle = await service.repository(repo.id);
      await jobLog.own(`checking repository ${repo.name}${verifyData ? ' with --verify-data' : ''}`);
      await jobLog.flush();
      const errors: string[] = [];
      let errorCount = 0;
      let startedAt = new Date();
      const r = await beating(() =>
        exclusively(handle, async () => {
          startedAt = new Date();
          return borg(inv, ['check', '--log-json', ...(verifyData ? ['--verify-data'] : []), repo.path], jobLog, (l) => {
            if (l.kind !== 'log' || !['WARNING', 'ERROR', 'CRITICAL'].includes(l.level)) return;
            errorCount++;
            if (errors.length < MAX_CHECK_ERRORS) errors.push(l.message);
          });
        }),
      );
      cancelledOr(r, 'borg check');
      const finishedAt = new Date();
      const durationMs = finishedAt.getTime() - startedAt.getTime();
      // do_check: 0 = no problems, 1 = problems found (EXIT_WARNING), 2 = could not check.
      const result = r.code === 0 ? 'ok' : 'failed';
      if (result === 'failed' && errorCount === 0) {
        errorCount = 1;
        errors.push(`borg check exited with ${r.code}`);
      }
      // A retried activity records its check once.
      await db.delete(repositoryChecksTable).where(eq(repositoryChecksTable.jobId, jobId));
      await db.insert(repositoryChecksTable).values({ repositoryId: repo.id, jobId, result, verifyData, exitCode: r.code, errors, errorCount, startedAt, finishedAt, durationMs });
      await jobLog.own(result === 'ok' ? `check passed in ${Math.round(durationMs / 1000)} s` : `check failed: ${errorCount} problem(s) reported`, result === 'ok' ? 'INFO' : 'ERROR');
      await jobLog.flush();
      log.info({ job: jobId, repository: repo.name, result, errorCount, durationMs }, 'check finished');
      return { result, exitCode: r.code, errorCount, errors: errors.slice(0, 5), durationMs, stats: { durationSeconds: Math.round(durationMs / 1000), checkErrors: errorCount, verifyData: verifyData ? 'yes' : 'no' } };
    },
  };
}

export type MaintenanceActivities = ReturnType<typeof createMaintenanceActivities>;
