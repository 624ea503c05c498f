// One SSH connection to a job's client per activity, kept in a pool between the activities of a
// job so that push, run and cleanup do not each pay for a handshake.
import { posix } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Db } from '../../db/client.js';
import { findClientById } from '../../db/queries/clients.js';
import { findJob } from '../../db/queries/jobs.js';
import type { Client, Job } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import { sftpRealpath } from '../../infra/sftp.js';
import { SshError, type SshConnection } from '../../infra/ssh.js';
import type { SshPool } from '../../infra/ssh-pool.js';
import { connectClient } from '../../services/clients.js';
import { clientJobDir } from './job-folder.js';

/** What an activity holds while it works on a job's client. */
export interface OnClient {
  conn: SshConnection;
  job: Job;
  client: Client;
  /** The SSH user's home on the client. */
  home: string;
  /** The job folder on the client (absolute). */
  dir: string;
}

export interface ClientConnectionDeps {
  db: Db;
  config: Config;
  log: Logger;
}

/** How long a connection opened ahead of need (warm) may take, SFTP included. */
const WARM_MS = 10_000;

/** Rejects when `signal` aborts (a race's timeout). */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

export function createClientConnections(deps: ClientConnectionDeps, pool: SshPool) {
  const { db } = deps;

  async function loadJob(jobId: string): Promise<{ job: Job; client: Client }> {
    const job = await findJob(db, jobId);
    if (!job) throw ApplicationFailure.nonRetryable(`job ${jobId} does not exist`, 'JobGone');
    if (!job.clientId) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
    const client = await findClientById(db, job.clientId);
    if (!client) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
    return { job, client };
  }

  /** Connections are only reused to a client whose host key is pinned, with the same target. */
  const poolKey = (c: Client) => (c.hostKey ? `${c.id} ${c.sshUser}@${c.host}:${c.port} ${c.hostKey}` : undefined);

  async function connect(client: Client): Promise<SshConnection> {
    const key = poolKey(client);
    const kept = key ? await pool.claim(key, Context.current().cancellationSignal) : undefined;
    if (kept) return kept;
    try {
      return (await connectClient(deps, client, { signal: Context.current().cancellationSignal })).conn;
    } catch (err) {
      if (err instanceof SshError && err.permanent) {
        throw ApplicationFailure.nonRetryable(err.message, err.code === 'host-key-changed' ? 'HostKeyChanged' : 'AuthFailed');
      }
      throw err;
    }
  }

  /** Runs `fn` on the job's client; the connection goes back to the pool only if `fn` succeeded. */
  async function withClient<T>(jobId: string, fn: (c: OnClient) => Promise<T>): Promise<T> {
    const { job, client } = await loadJob(jobId);
    const conn = await connect(client);
    let healthy = false;
    try {
      const home = await sftpRealpath(await conn.sftp(), '.');
      const r = await fn({ conn, job, client, home, dir: posix.join(home, clientJobDir(jobId)) });
      healthy = true;
      return r;
    } finally {
      const key = poolKey(client);
      if (healthy && key) pool.give(key, conn);
      else conn.close();
    }
  }

  /**
   * Opens a connection to the job's client ahead of its next step on this worker, while the
   * server prepares: a cold handshake was on the job's critical path (docs/performance.md,
   * "Restore: fixed costs"). Only to a client whose host key is pinned. Bounded by WARM_MS, so a
   * step waiting for it soon connects itself, and reports why if that fails too.
   */
  function warm(jobId: string): void {
    void loadJob(jobId)
      .then(({ client }) => {
        const key = poolKey(client);
        if (!key) return;
        pool.open(key, async () => {
          const signal = AbortSignal.timeout(WARM_MS);
          let conn: SshConnection | undefined;
          try {
            conn = (await connectClient(deps, client, { signal, readyTimeoutMs: WARM_MS })).conn;
            await Promise.race([conn.sftp(), rejectOnAbort(signal)]);
            return conn;
          } catch (err) {
            conn?.close();
            deps.log.debug({ job: jobId, client: client.name, err: (err as Error).message }, 'connecting ahead of the job step failed');
            return undefined;
          }
        });
      })
      .catch(() => {});
  }

  return { withClient, warm };
}
