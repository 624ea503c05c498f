// A session policy per job kind (DESIGN.md §4, §6): which of the forced command's operations a job
// of that kind may use, and the session that carries them out against the real repository. The
// connection (../connection.ts) checks the operation against `allows` before the session sees it.
import type { Job } from '../../../db/schema.js';
import type { Config } from '../../../infra/config.js';
import type { Logger } from '../../../infra/logger.js';
import type { ProxyRequest } from '../../protocol/requests.js';
import type { CryptoPool } from '../crypto-pool.js';
import type { JobQuota } from '../job-quota.js';
import type { OpenedJobKey } from '../job-key.js';
import type { JobStateFile } from '../job-state.js';
import type { LiveSession, RepositoryHandle } from '../repository.js';
import type { Upstream } from '../upstream.js';

/** What a put's data reference is replaced with once the data is handed on (connection and sessions alike). */
export const NO_DATA = Buffer.alloc(0);

/** An operation of an attached session (attach and violation reports are the connection's own). */
export type SessionOperation = Exclude<ProxyRequest['t'], 'attach' | 'violation'>;

/** What the service keeps for a job across its sessions. */
export interface SessionHooks {
  /** Persists what a commit changed for the job (served manifest, id map). */
  saveJobState(update: Pick<JobStateFile, 'servedManifest' | 'idMap'>): void;
  /** Counters of the job (bytes through the proxy, new objects). */
  stats: { uploadedBytes: number; uploadedObjects: number; newObjects: number; newBytes: number };
  /** The job's cost bounds and what it has used of them (job-quota.ts). */
  quota: JobQuota;
  /** Job-key counters for objects the service encrypts for the client. */
  allocateJobNonce(blocks: bigint): Promise<bigint>;
  /** A restore's selection being walked in this service (prepare-restore.ts), or undefined when none is. */
  restoreSelection(): Promise<unknown> | undefined;
}

/** One attached session: the operations the policy allows, against the real repository. */
export interface JobSession extends LiveSession {
  readonly repo: RepositoryHandle;
  /** Verifies and stores one object as the client sent it; may run concurrently with other puts. */
  put(id: Buffer, object: Buffer, owned: boolean): Promise<void>;
  /** Waits until every put sent so far is done (the ordering point of the other operations). */
  barrier(): Promise<void>;
  manifestObject(): Promise<Buffer>;
  get(id: Buffer): Promise<Buffer>;
  delete(id: Buffer): void;
  putManifest(object: Buffer): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** The connection is gone: undo what is uncommitted and clean up. */
  close(): Promise<void>;
}

/** What attach has established when the policy opens the session. */
export interface SessionOpening {
  job: Job;
  jobKey: OpenedJobKey;
  state: JobStateFile;
  config: Config;
  repo: RepositoryHandle;
  /** A share of the repository's upstream, held for the session; none for a read-only policy. */
  up: Upstream | undefined;
  pool: CryptoPool;
  hooks: SessionHooks;
  log: Logger;
}

export interface SessionPolicy {
  /** Operations a session of this kind may use; any other is a violation. */
  readonly allows: ReadonlySet<SessionOperation>;
  /**
   * The session only reads: its gets run concurrently (there are no puts to order them after),
   * and it keeps no share of the repository's upstream — it takes the upstream for each read
   * that needs it, never while it waits for its client (DESIGN.md §4.10), and attaches without.
   */
  readonly readOnly?: boolean;
  /**
   * What `open`'s exclusive flag is when a stock borg of this kind opens (borg create: True,
   * borg extract: False); the other value is a client BorgCube never runs.
   */
  readonly exclusive: boolean;
  /** Why this job cannot have a session at all (checked before authentication), or undefined. */
  refuses(job: Job): string | undefined;
  /** Synchronous, so that attach's last check that no other session runs still holds. */
  open(o: SessionOpening): JobSession;
}
