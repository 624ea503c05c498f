// The repository service (DESIGN.md §2, §5): runs as the storage account, holds the real keys,
// owns one upstream `borg serve` per repository, and serves
//  * forced-command sessions on the storage socket (connection.ts, attach.ts, sessions/),
//  * sshd's AuthorizedKeysCommand on the same socket (authorized-keys.ts),
//  * admin leases on the control socket (leases.ts; the CLI's `borgcube borg` waits this way),
//  * the storage activities, in the same process, through storage-api.ts.
import type { Server } from 'node:net';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { findRepositoryById, getRepositorySecrets, repositorySecretContext } from '../../db/queries/repositories.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import type { MasterKey } from '../../infra/secrets.js';
import { repoStateDir } from '../../infra/storage-layout.js';
import { loadRepositoryKey } from './repository-key.js';
import { AttachRefusalLog, attachSession } from './attach.js';
import { Catalog } from './catalog/catalog.js';
import { serveControl } from './control.js';
import { authorizedKeys, type AuthorizedKeysDeps } from './authorized-keys.js';
import { ProxyConnection } from './connection.js';
import { CryptoPool } from './crypto-pool.js';
import { ItemsCache } from './items-cache.js';
import { JobFaults } from './job-faults.js';
import { JobNonces } from './job-nonces.js';
import { readJobState, writeJobState } from './job-state.js';
import { JobQuota, readJobLimits } from './job-quota.js';
import { listen } from './listener.js';
import { ITEMS_CACHE_BYTES, RepositoryHandle } from './repository.js';
import { RestoreSelections } from './restore-selections.js';
import { SessionRegistry } from './session-registry.js';
import type { SessionHooks } from './sessions/policy.js';
import { Violations } from './violations.js';

export interface RepositoryServiceDeps {
  db: Db;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  /** Violations are signalled to the job's workflow through this client (absent in some tests). */
  temporal?: TemporalClient;
  /** How sshd runs the forced command (authorized-keys.ts): bin/borgcube-sandbox, node, proxy/session/main.js. */
  proxyCommand: AuthorizedKeysDeps['proxyCommand'];
  /** Group that may connect to the storage socket (the proxy account's group). */
  proxyGid?: number;
  idleCloseMs?: number;
}

export type JobStats = SessionHooks['stats'];

export class RepositoryService {
  readonly pool = new CryptoPool();
  readonly sessions = new SessionRegistry();
  /** Restore selections walked while the client's borg starts (prepare-restore.ts). */
  readonly restoreSelections = new RestoreSelections();
  private readonly itemsCache = new ItemsCache(ITEMS_CACHE_BYTES);
  private readonly repos = new Map<string, Promise<RepositoryHandle>>();
  private readonly stats = new Map<string, JobStats>();
  private readonly quotas = new Map<string, JobQuota>();
  private readonly violations: Violations;
  private readonly faults: JobFaults;
  private readonly nonces: JobNonces;
  private servers: Server[] = [];
  /** Browse and download (DESIGN.md §3), over the control socket. */
  readonly catalog: Catalog;

  constructor(readonly deps: RepositoryServiceDeps) {
    this.violations = new Violations(deps, this.sessions);
    this.faults = new JobFaults({ ...deps, storageHost: deps.config.storageHost }, this.sessions);
    this.nonces = new JobNonces(deps.db);
    this.catalog = new Catalog({ config: deps.config, log: deps.log.child({ part: 'catalog' }), repository: (id) => this.repository(id) });
  }

  /** The repository, opened (key, manifest, chunk indexes) by its first user. */
  repository(id: string): Promise<RepositoryHandle> {
    let p = this.repos.get(id);
    if (!p) {
      p = this.loadRepository(id);
      this.repos.set(id, p);
      p.catch(() => this.repos.delete(id));
    }
    return p;
  }

  /** The job no longer keeps its repository's borg serve open (RepositoryHandle.endHold); nothing is loaded for it. */
  endHold(repositoryId: string, jobId: string): void {
    void this.repos.get(repositoryId)?.then(
      (h) => h.endHold(jobId),
      () => {},
    );
  }

  private async loadRepository(id: string): Promise<RepositoryHandle> {
    const { db, masterKey, config, log } = this.deps;
    const row = await findRepositoryById(db, id);
    if (!row) throw new Error(`repository ${id} does not exist`);
    const secrets = await getRepositorySecrets(db, id);
    if (!secrets) throw new Error(`repository ${id} has no key`);
    const keyText = masterKey.openText(secrets.keySealed, repositorySecretContext.key(id));
    const passphrase = masterKey.openText(secrets.passphraseSealed, repositorySecretContext.passphrase(id));
    const key = loadRepositoryKey(row.encryption, keyText, passphrase);
    const handle = new RepositoryHandle({ id, name: row.name, path: row.path, borgId: row.borgId }, key, {
      borgPath: config.borg.path,
      stateDir: repoStateDir(config, id),
      log: log.child({ repository: row.name }),
      pool: this.pool,
      itemsCache: this.itemsCache,
      idleCloseMs: this.deps.idleCloseMs,
    });
    handle.onUpstreamLost = (err) => this.sessions.abortRepository(handle, err.message);
    // A prune, check or admin command waits for running sessions, and new ones wait behind it: a
    // session whose client has been silent for this long is ended rather than keep them all
    // waiting (DESIGN.md §4.10).
    const idleMs = config.proxy.idlePreemptMs;
    handle.onDrainWait = () => this.sessions.endIdle(handle, idleMs, `ended so that a prune or check can run: the client sent nothing for ${idleMs / 1000} s`);
    return handle;
  }

  async listen(): Promise<void> {
    const { db, config, log, masterKey } = this.deps;
    const connection = { db, log, sessions: this.sessions, violations: this.violations, faults: this.faults, nonces: this.nonces, refusedAttaches: new AttachRefusalLog({ db, log }) };
    const attachDeps = { db, config, masterKey, log, pool: this.pool, sessions: this.sessions, repository: (id: string) => this.repository(id), hooks: (jobId: string) => this.sessionHooks(jobId) };
    this.servers = await listen({
      config,
      log,
      proxyGid: this.deps.proxyGid,
      authorizedKeys: (user, fingerprint) => authorizedKeys(this.deps, user, fingerprint),
      connection: (sock) => new ProxyConnection(sock, { ...connection, attach: (req, entry) => attachSession(attachDeps, req, entry) }),
      control: (sock) => serveControl(sock, { log, repository: (id) => this.repository(id), catalog: this.catalog }),
    });
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    this.sessions.abortAll('the repository service is stopping');
    for (const p of this.repos.values()) await (await p.catch(() => undefined))?.shutdown();
    await this.pool.close();
  }

  /** Counters of a job's sessions (bytes through the proxy, new objects), kept until cleanup. */
  jobStats(jobId: string): JobStats {
    let s = this.stats.get(jobId);
    if (!s) {
      s = { uploadedBytes: 0, uploadedObjects: 0, newObjects: 0, newBytes: 0 };
      this.stats.set(jobId, s);
    }
    return s;
  }

  forgetJobStats(jobId: string): void {
    this.stats.delete(jobId);
    this.quotas.delete(jobId);
  }

  /** A job's cost bounds and what its sessions used of them, kept across its sessions until cleanup. */
  private jobQuota(jobId: string): JobQuota {
    let q = this.quotas.get(jobId);
    if (!q) {
      q = new JobQuota(readJobLimits(this.deps.config, jobId));
      this.quotas.set(jobId, q);
    }
    return q;
  }

  private sessionHooks(jobId: string): SessionHooks {
    const { config } = this.deps;
    return {
      saveJobState: (update) => {
        const st = readJobState(config, jobId);
        if (st) writeJobState(config, jobId, { ...st, ...update });
      },
      stats: this.jobStats(jobId),
      quota: this.jobQuota(jobId),
      allocateJobNonce: (blocks) => this.nonces.allocate(jobId, blocks),
      restoreSelection: () => this.restoreSelections.get(jobId),
    };
  }
}
