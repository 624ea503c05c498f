// Binding a connection to its job (DESIGN.md §5): the job must be running and of a kind that has
// sessions, the key that authenticated (sshd's ExposeAuthInfo) must be the job's live credential,
// and the repository path the client asked for must be this job's. Then the job's policy opens
// the session on the repository, at most one per job.
import type { Db } from '../../db/client.js';
import { findJobKey } from '../../db/queries/job-keys.js';
import { findJob } from '../../db/queries/jobs.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import type { MasterKey } from '../../infra/secrets.js';
import type { AttachResult } from '../protocol/replies.js';
import type { ProxyRequest } from '../protocol/requests.js';
import { authenticatedFor } from './credentials.js';
import type { CryptoPool } from './crypto-pool.js';
import { openJobKey } from './job-key.js';
import { readJobState } from './job-state.js';
import type { RepositoryHandle } from './repository.js';
import type { SessionEntry, SessionRegistry } from './session-registry.js';
import { PolicyViolation, SessionError } from './sessions/errors.js';
import { sessionPolicyFor } from './sessions/policies.js';
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

export async function attachSession(deps: AttachDeps, req: Extract<ProxyRequest, { t: 'attach' }>, entry: SessionEntry): Promise<Attached> {
  const { db, config, masterKey, log, sessions } = deps;
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
  const state = readJobState(config, job.id);
  if (!state) throw new SessionError('PathNotAllowed', 'the job is not prepared');
  const keyRow = await findJobKey(db, job.id);
  if (!keyRow) throw new SessionError('PathNotAllowed', 'the job has no key');
  const jobKey = openJobKey(masterKey, keyRow);

  // At most one session per job: a second one waits for the first to end (a restarted borg).
  for (let i = 0; i < 120 && sessions.has(job.id); i++) await new Promise((r) => setTimeout(r, 500));
  if (sessions.has(job.id)) throw new SessionError('LockTimeout', 'another session of this job is still open');

  const repo = await deps.repository(job.repositoryId);
  const up = await repo.acquire();
  let session: JobSession;
  try {
    // Re-checked after the last await, so two racing attaches cannot both pass.
    if (sessions.has(job.id)) throw new SessionError('LockTimeout', 'another session of this job is still open');
    session = policy.open({ job, jobKey, state, config, repo, up, pool: deps.pool, hooks: deps.hooks(job.id), log });
  } catch (err) {
    repo.release();
    throw err;
  }
  // A read-only session takes the upstream per read (the connection does not release it at close).
  if (policy.readOnly) repo.release();
  sessions.add(job.id, entry);
  repo.sessions.add(session);
  log.info({ job: job.id, repository: repo.info.name }, 'proxy session attached');
  return { session, policy, result: { keyText: jobKey.keyText, repoId: state.fakeRepoId } };
}
