// Binding a connection to its job (DESIGN.md §5): the job must be running and of a kind that has
// sessions, the key that authenticated (sshd's ExposeAuthInfo) must be the job's live credential,
// and the repository path the client asked for must be this job's. Then the job's policy opens
// the session on the repository, at most one per job. Every wait (database, repository) is
// followed by a fresh look at the connection and the job: a session whose connection closed or
// whose job ended meanwhile never attaches, and gives back what it took.
import type { Db } from '../../db/client.js';
import { findJobKey } from '../../db/queries/job-keys.js';
import { appendJobLog, findJob } from '../../db/queries/jobs.js';
import type { Job } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import type { MasterKey } from '../../infra/secrets.js';
import type { AttachResult } from '../protocol/replies.js';
import type { ProxyRequest } from '../protocol/requests.js';
import { authenticatedFor } from './credentials.js';
import type { CryptoPool } from './crypto-pool.js';
import { openJobKey } from './job-key.js';
import { readJobState } from './job-state.js';
import { untilAborted } from './mutex.js';
import type { RepositoryHandle } from './repository.js';
import type { SessionEntry, SessionRegistry } from './session-registry.js';
import { PolicyViolation, SessionError } from './sessions/errors.js';
import { sessionPolicyFor } from './sessions/policies.js';
import type { Upstream } from './upstream.js';
import type { JobSession, SessionHooks, SessionPolicy } from './sessions/policy.js';

export interface AttachDeps {
  db: Db;
  config: Config;
  masterKey: MasterKey;
  log: Logger;
  pool: CryptoPool;
  sessions: SessionRegistry;
  repository(id: string): Promise<RepositoryHandle>;
  hooks(jobId: string): SessionHooks;
}

export interface Attached {
  session: JobSession;
  policy: SessionPolicy;
  result: AttachResult;
}

/** How long an attach waits for the previous session of its job to finish cleaning up (server work only). */
const PREVIOUS_SESSION_WAIT_MS = 60_000;

export async function attachSession(deps: AttachDeps, req: Extract<ProxyRequest, { t: 'attach' }>, entry: SessionEntry): Promise<Attached> {
  const { db } = deps;
  const job = await findJob(db, req.jobId);
  if (!job || job.state !== 'running') throw new SessionError('PathNotAllowed', 'no such running job');
  const policy = sessionPolicyFor(job.kind);
  if (!policy) throw new SessionError('PathNotAllowed', `a ${job.kind} job opens no repository session`);
  const refused = policy.refuses(job);
  if (refused) throw new SessionError('PathNotAllowed', refused);
  if (!(await authenticatedFor(db, job.id, req.authInfo))) throw new PolicyViolation('credential-mismatch', 'the session was not authenticated with this job’s live credential');
  const wanted = req.path.replace(/\/+$/, '');
  if (wanted !== `/${job.id}`) {
    const other = /^\/([0-9a-f-]{36})$/.exec(wanted)?.[1];
    throw new PolicyViolation(other ? 'wrong-job' : 'wrong-path', other ? `the credential of job ${job.id} was used to open job ${other}` : `open of ${JSON.stringify(req.path.slice(0, 200))}`);
  }
  // call-args.ts lets both values through (it cannot know the job); the job's kind decides.
  if (req.exclusive !== policy.exclusive) {
    throw new PolicyViolation('bad-arguments', `open: exclusive=${req.exclusive ? 'True' : 'False'}, but a ${job.kind} job's stock borg opens with exclusive=${policy.exclusive ? 'True' : 'False'}`);
  }
  // From here on the connection is proven to be this job's: a refusal goes into the job's log.
  try {
    return await attachProven(deps, req, entry, job, policy);
  } catch (err) {
    throw err instanceof PolicyViolation ? err : new AttachRefused(job.id, err);
  }
}

/**
 * An attach refused (not as a violation) after the connection proved its job: the client only
 * sees the short text, so the job's log says why its borg could not open the repository.
 */
export class AttachRefused extends Error {
  override name = 'AttachRefused';
  constructor(
    readonly jobId: string,
    readonly reason: unknown,
  ) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

async function attachProven(deps: AttachDeps, req: Extract<ProxyRequest, { t: 'attach' }>, entry: SessionEntry, job: Job, policy: SessionPolicy): Promise<Attached> {
  const { db, config, masterKey, log, sessions } = deps;
  ensureOpen(entry);

  // Exactly one live session per job (DESIGN.md §4.10). Registered before anything else is
  // awaited, so that a second connection racing this one sees it, and the end of the job or a
  // violation reaches this connection while it still waits.
  sessions.add(job.id, entry);
  let up: Upstream | undefined;
  let repo: RepositoryHandle | undefined;
  try {
    if (sessions.hasLiveOther(job.id, entry)) throw new PolicyViolation('second-session', 'a second connection with the credential of a job that already has a live session');
    // A restarted borg: its previous session's connection is gone, and its cleanup (undoing what
    // was not committed) only waits for the repository, never for a client.
    const deadline = Date.now() + PREVIOUS_SESSION_WAIT_MS;
    while (sessions.hasOther(job.id, entry)) {
      if (Date.now() > deadline) throw new SessionError('LockTimeout', 'the previous session of this job is still closing');
      await untilAborted(Promise.race([sessions.nextRemoval(job.id), sleep(1000)]), entry.closedSignal).catch(closedError);
      if (sessions.hasLiveOther(job.id, entry)) throw new PolicyViolation('second-session', 'a second connection with the credential of a job that already has a live session');
    }
    const state = readJobState(config, job.id);
    if (!state) throw new SessionError('PathNotAllowed', 'the job is not prepared');
    const keyRow = await findJobKey(db, job.id);
    if (!keyRow) throw new SessionError('PathNotAllowed', 'the job has no key');
    const jobKey = openJobKey(masterKey, keyRow);

    repo = await deps.repository(job.repositoryId);
    ensureOpen(entry);
    // Behind a prune or check this may wait long: a connection that closes meanwhile leaves the
    // queue at once, and takes nothing. A read-only session takes the upstream per read, and
    // mostly never (it reads the segment files): it does not start a borg serve here.
    if (!policy.readOnly) {
      up = await repo.acquire(entry.closedSignal).catch((err: Error) => {
        if (entry.closed) closedError();
        throw err;
      });
    }
    // The job may have ended, or its credential been revoked, while this waited.
    ensureOpen(entry);
    if (!(await authenticatedFor(db, job.id, req.authInfo))) throw new SessionError('PathNotAllowed', 'the job ended or its credential was revoked while the session was opening');
    ensureOpen(entry);
    if (sessions.hasOther(job.id, entry)) throw new PolicyViolation('second-session', 'a second connection with the credential of a job that already has a live session');
    // Synchronous from the last check on: nothing can end the job or the connection in between.
    const session = policy.open({ job, jobKey, state, config, repo, up, pool: deps.pool, hooks: deps.hooks(job.id), log });
    repo.sessions.add(session);
    log.info({ job: job.id, repository: repo.info.name }, 'proxy session attached');
    return { session, policy, result: { keyText: jobKey.keyText, repoId: state.fakeRepoId } };
  } catch (err) {
    if (up) repo!.release();
    sessions.remove(job.id, entry);
    throw err;
  }
}

function ensureOpen(entry: SessionEntry): void {
  if (entry.closed) closedError();
}

function closedError(): never {
  throw new SessionError('ConnectionClosed', 'the connection closed while the session was opening');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Refused opens written to one job's log at most: a client retrying in a loop must not flood it. */
const REFUSALS_LOGGED_PER_JOB = 20;
/** Jobs whose count is remembered (least recently refused first forgotten). */
const REMEMBERED_JOBS = 10_000;

/** Writes refused attaches into their job's log, at most REFUSALS_LOGGED_PER_JOB a job. */
export class AttachRefusalLog {
  private readonly counts = new Map<string, number>();

  constructor(private readonly deps: { db: Db; log: Logger }) {}

  async note(jobId: string, text: string): Promise<void> {
    const n = (this.counts.get(jobId) ?? 0) + 1;
    this.counts.delete(jobId);
    this.counts.set(jobId, n);
    if (this.counts.size > REMEMBERED_JOBS) this.counts.delete(this.counts.keys().next().value!);
    if (n > REFUSALS_LOGGED_PER_JOB) return;
    const last = n === REFUSALS_LOGGED_PER_JOB ? ' (further refused opens of this job are not logged)' : '';
    await appendJobLog(this.deps.db, jobId, `a session of this job could not open the repository: ${text.slice(0, 2000)}${last}`, 'WARNING').catch((err: Error) =>
      this.deps.log.warn({ job: jobId, err: err.message }, 'could not write to the job log'),
    );
  }
}
