// A backup job's session inside the repository service: the policy of DESIGN.md §4, enforced again
// on what the (unprivileged) forced command forwards. The proxy has already checked the job-key MAC and
// decrypted; everything that decides what reaches the repository happens here, with the real key:
//  * every put is decompressed and its id recomputed before it is encrypted with the real key;
//  * the client's manifest may only add, replace or drop its own reserved archive and that
//    archive's checkpoints; each new archive must verify under the job key, every object it
//    references must have been uploaded and verified in this job or handed to this client, and it
//    is re-signed (TAM) with the real key before it enters the real manifest, with server time;
//  * deletes only of this job's own checkpoint archives; gets only of this session's archives;
//  * merge, manifest write and commit are one critical section per repository, entered only once
//    the client's commit has arrived (nothing repository-wide waits for a client, §4.10), and a
//    commit never publishes another job's archive (those enter the manifest only through their
//    own merge).
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { Logger } from '../../../infra/logger.js';
import { compressNone } from '../../borg/compression.js';
import { parseManifest, type Manifest } from '../../borg/manifest.js';
import { MAX_DATA_SIZE } from '../../borg/msgpack.js';
import { AES_OVERHEAD, encryptObject } from '../../borg/objects.js';
import type { CryptoPool } from '../crypto-pool.js';
import { oversizedObject } from '../job-quota.js';
import { PutIndex } from '../put-index.js';
import { sweepPutLog } from '../sweep.js';
import { MAX_PLAINTEXT, type RepositoryHandle } from '../repository.js';
import { deleteIfPresent, type Upstream } from '../upstream.js';
import { acceptArchive, type SessionArchive } from './backup-archive.js';
import { isCheckpointName, loadBackupContext, type JobContext } from './backup-context.js';
import { diffManifest, mergeIntoReal, openClientManifest } from './backup-manifest.js';
import { PolicyViolation, SessionError } from './errors.js';
import { NO_DATA, type JobSession, type SessionHooks, type SessionOperation, type SessionPolicy } from './policy.js';

/**
 * A manifest write the client has sent and not yet committed. Only what was checked is kept: the
 * merge into the real manifest, its write and the commit happen together in commit(), once the
 * client's commit request has fully arrived, so no client holds the repository's commit lock
 * while the service waits for it (DESIGN.md §4.10).
 */
interface PendingManifest {
  removed: string[];
  newArchives: Array<{ name: string; entry: SessionArchive }>;
  /** The manifest as the client wrote it: what it is served once this commits. */
  clientManifest: Buffer;
}

const backupOperations: ReadonlySet<SessionOperation> = new Set(['getManifest', 'nonce', 'put', 'putManifest', 'delete', 'get', 'commit', 'rollback']);

/** Backups may use every operation; the session below decides what each may touch. */
export const backupPolicy: SessionPolicy = {
  allows: backupOperations,
  // archiver.py do_create: @with_repository(exclusive=True, …)
  exclusive: true,
  refuses: (job) => (!job.clientId || !job.archiveName ? 'no such running job' : undefined),
  open: (o) => {
    if (!o.up) throw new Error('a backup session needs a share of the upstream');
    return new BackupSession(loadBackupContext(o), o.repo, o.up, o.pool, o.hooks, o.log.child({ job: o.job.id }));
  },
};

/** Put ids appended to the job's put log in batches of this many, not only at commits: the ids waiting cost memory. */
const PUT_LOG_BATCH = 4096;

export class BackupSession implements JobSession {
  /** Objects uploaded in this session: verified plaintext size and the size the client uploaded. */
  readonly puts = new PutIndex();
  /**
   * Ids being verified right now (claimed before any await), so a concurrent cleanup never
   * removes them; counted, as the same id may be in flight twice. Empty between puts.
   */
  readonly claims = new Map<string, number>();
  private readonly unloggedPuts: Buffer[] = [];
  private readonly archives = new Map<string, SessionArchive>();
  private inflight = new Set<Promise<unknown>>();
  private pending: PendingManifest | undefined;
  private base: Manifest;
  private closed = false;

  get jobId() {
    return this.ctx.jobId;
  }

  /** The job key's name in the crypto pool (registered for the session's lifetime). */
  get jobKeyRef() {
    return `job:${this.ctx.jobId}`;
  }

  constructor(
    readonly ctx: JobContext,
    readonly repo: RepositoryHandle,
    private readonly up: Upstream,
    private readonly pool: CryptoPool,
    private readonly hooks: SessionHooks,
    private readonly log: Logger,
  ) {
    this.base = parseManifest(ctx.jobKey, ctx.servedManifest);
    pool.registerKey(this.jobKeyRef, ctx.jobKey);
  }

  // ---- puts ---------------------------------------------------------------------------------

  /** Verifies and stores one object as the client sent it. Runs concurrently with other puts. */
  put(id: Buffer, object: Buffer, owned = false): Promise<void> {
    const p = this.doPut(id, object, owned);
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p)).catch(() => {});
    return p;
  }

  private async doPut(id: Buffer, object: Buffer, owned: boolean): Promise<void> {
    if (id.equals(Buffer.alloc(32))) throw new PolicyViolation('manifest-put', 'the manifest is written with putManifest');
    if (object.length > MAX_DATA_SIZE) throw new SessionError('IntegrityError', `More than allowed put data [${object.length} > ${MAX_DATA_SIZE}]`);
    if (object.length < AES_OVERHEAD) throw new PolicyViolation('bad-mac', `put ${id.toString('hex')}: object too short to be encrypted`);
    const hex = id.toString('hex');
    // Counted (and refused over the job's quota) before any work is done for it.
    this.hooks.quota.put(object.length);
    this.hooks.stats.uploadedBytes += object.length;
    this.hooks.stats.uploadedObjects++;
    // What this client's cache will show for the object: the length it sent, whether or not the
    // repository has the object already (another tenant's copy must not show through, §4.12).
    const sent = object.length;
    // Known already (an archive references it, or a live session stored it): verify, don't rewrite.
    const known = this.repo.chunks.has(hex) || this.repo.storedByLiveSession(hex);
    this.claims.set(hex, (this.claims.get(hex) ?? 0) + 1);
    try {
      await this.verifyAndStore(id, hex, object, owned, known, sent);
    } finally {
      const n = this.claims.get(hex)! - 1;
      if (n) this.claims.set(hex, n);
      else this.claims.delete(hex);
    }
  }

  private async verifyAndStore(id: Buffer, hex: string, object: Buffer, owned: boolean, known: boolean, sent: number): Promise<void> {
    // Job keys are AES types, so the payload is the object minus its 41-byte envelope.
    const iv = known ? undefined : await this.repo.nonces.allocate(object.length - AES_OVERHEAD);
    // `object` is not touched after this call: an owned frame moves to the worker thread, any
    // other is copied for it (with the batch's others, at the end of this event-loop turn).
    // Nor is it kept while the put waits (below, the same for the re-encrypted object once it
    // is written): data that outlives two young-generation collections is freed only by a full
    // one, and with many puts in flight during a big backup that made the service's main
    // thread spend more than a second in full GCs.
    // The decoders learn the plaintext's size from the headers and refuse past the bound before
    // they allocate: a small object that would inflate to gigabytes costs nothing.
    const maxPlaintext = Math.min(this.hooks.quota.limits.plaintextBytesPerObject, MAX_PLAINTEXT);
    const verifying = this.pool.verify({ keyRef: this.repo.keyRef, jobKeyRef: this.jobKeyRef, id, object, maxPlaintext, iv, transfer: owned });
    object = NO_DATA;
    const r = await verifying;
    if (!r.ok) {
      if (r.reason === 'too-large') throw oversizedObject(hex, maxPlaintext, r.detail);
      throw new PolicyViolation(r.reason === 'undecodable' ? 'undecodable-object' : r.reason, `put ${hex}: ${r.detail}`);
    }
    const size = r.plaintextLength;
    this.hooks.quota.plaintext(size);
    if (!known) {
      const csize = r.object!.length;
      const stored = this.up.call('put', { id, data: r.object! });
      r.object = undefined;
      await stored;
      this.hooks.stats.newObjects++;
      this.hooks.stats.newBytes += csize;
    }
    this.puts.set(hex, { size, csize: sent });
    this.unloggedPuts.push(id);
    if (this.unloggedPuts.length >= PUT_LOG_BATCH) this.logPuts();
  }

  /** Waits until every put sent so far is done (ordering point for the other calls). */
  async barrier(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  // ---- reads and deletes ----------------------------------------------------------------------

  /** The client's manifest view, encrypted with the job key under a fresh job-key counter. */
  async manifestObject(): Promise<Buffer> {
    return this.jobEncrypt(this.ctx.servedManifest);
  }

  /** Only archive objects this session wrote may be read back (borg's --stats reads them). */
  async get(id: Buffer): Promise<Buffer> {
    const a = this.archives.get(id.toString('hex'));
    if (!a) throw new PolicyViolation('forbidden-get', `get of object ${id.toString('hex')}, which this job did not write`);
    return this.jobEncrypt(a.plaintext);
  }

  private async jobEncrypt(plaintext: Buffer): Promise<Buffer> {
    const payload = compressNone(plaintext);
    const iv = await this.hooks.allocateJobNonce(BigInt(Math.ceil(payload.length / 16)));
    return encryptObject(this.ctx.jobKey, payload, iv);
  }

  /** borg create deletes its previous checkpoint's archive object; nothing else may be deleted. */
  delete(id: Buffer): void {
    const hex = id.toString('hex');
    const known = this.archives.get(hex)?.name ?? [...this.base.archives].find(([, a]) => a.id.equals(id))?.[0];
    if (known === undefined || !isCheckpointName(this.ctx, known)) {
      throw new PolicyViolation('forbidden-delete', `delete of object ${hex}, which is not a checkpoint of this job`);
    }
    // Nothing to do now: the object leaves with the manifest write that drops its entry.
  }

  // ---- manifest merge and commit ----------------------------------------------------------------

  async putManifest(object: Buffer): Promise<void> {
    if (this.pending) throw new PolicyViolation('manifest-twice', 'a second manifest write before commit');
    const { plaintext, parsed: next } = await openClientManifest(this.ctx.jobKey, object);
    const { added, removed } = diffManifest(this.ctx, this.base, next);
    // Validated and re-signed now, outside any repository-wide lock.
    const newArchives: Array<{ name: string; entry: SessionArchive }> = [];
    for (const [name, a] of added) newArchives.push({ name, entry: await this.acceptArchive(name, a.id) });
    this.pending = { removed, newArchives, clientManifest: plaintext };
    this.base = next;
    for (const { entry } of newArchives) this.ctx.idMap.set(entry.clientIdHex, entry.realId.toString('hex'));
  }

  /** A new archive of this job, checked and re-signed once per session (backup-archive.ts). */
  private async acceptArchive(name: string, clientId: Buffer): Promise<SessionArchive> {
    const existing = this.archives.get(clientId.toString('hex'));
    if (existing) return existing;
    const entry = await acceptArchive({ ctx: this.ctx, repo: this.repo, up: this.up, puts: this.puts, stored: (id) => this.unloggedPuts.push(id) }, name, clientId);
    this.archives.set(entry.clientIdHex, entry);
    return entry;
  }

  async commit(): Promise<void> {
    this.hooks.quota.commit();
    const pending = this.pending;
    this.pending = undefined;
    if (!pending) {
      // A commit without a manifest write changes nothing visible; still serialized with merges.
      await this.repo.commitLock.run(() => this.repo.commit(this.up));
      return;
    }
    // Merge, manifest write and commit are one critical section that waits only for borg serve.
    await this.repo.commitLock.run(async () => {
      const previous = this.repo.manifest;
      const added = pending.newArchives.map(({ entry }) => ({ realIdHex: entry.realId.toString('hex'), refs: entry.refs }));
      let written = false;
      let merged;
      try {
        merged = mergeIntoReal(this.ctx, previous.parsed, pending.removed, pending.newArchives);
        const next = await this.repo.writeManifest(this.up, merged.real);
        written = true;
        for (const id of merged.deletes) await deleteIfPresent(this.up, id);
        // The client-id copies of new archives were only needed for validation.
        for (const [clientHex, a] of this.archives) {
          if (added.some((x) => x.realIdHex === a.realId.toString('hex'))) await deleteIfPresent(this.up, Buffer.from(clientHex, 'hex'));
        }
        await this.repo.commit(this.up);
        this.repo.setCommittedManifest(next);
      } catch (err) {
        this.base = parseManifest(this.ctx.jobKey, this.ctx.servedManifest);
        // Undo the uncommitted manifest write: the previous manifest object is written back.
        if (written) await this.up.call('put', { id: Buffer.alloc(32), data: previous.object }).catch((e: Error) => this.log.error({ err: e.message }, 'reverting the manifest failed'));
        throw err;
      }
      for (const hex of merged.removedArchives) this.repo.chunks.removeArchive(hex);
      for (const a of added) this.repo.chunks.addArchive(a.realIdHex, a.refs);
    });
    this.ctx.servedManifest = pending.clientManifest;
    this.hooks.saveJobState({ servedManifest: this.ctx.servedManifest.toString('base64'), idMap: Object.fromEntries(this.ctx.idMap) });
  }

  /**
   * `rollback`: borg serve's transaction is shared by all sessions, so only our part is undone —
   * a manifest write not yet committed, which never reached the repository.
   */
  rollback(): Promise<void> {
    if (this.pending) {
      this.pending = undefined;
      this.base = parseManifest(this.ctx.jobKey, this.ctx.servedManifest);
    }
    return Promise.resolve();
  }

  /** Whether what this session stored is gone with its borg serve's transaction (it died or closed). */
  get upstreamLost(): boolean {
    return this.up.isClosed;
  }

  /** Appends the ids stored so far to the job's put log (durable before any commit). */
  logPuts() {
    if (!this.unloggedPuts.length) return;
    const fd = openSync(this.ctx.putLogPath, 'a', 0o600);
    try {
      writeSync(fd, Buffer.concat(this.unloggedPuts.splice(0)));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The connection is gone (or the session is being aborted): undo what is not committed, and
   * remove what this job stored that no archive references — borg itself would lose it with the
   * rolled-back transaction, and left behind it would make `borg check` report orphans.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.barrier();
    await this.rollback();
    this.logPuts();
    this.pool.forgetKey(this.jobKeyRef);
    this.repo.sessions.delete(this);
    if (!this.up.isClosed) {
      const removed = await sweepPutLog(this.repo, this.up, this.ctx.putLogPath, this.ctx.jobId);
      if (removed) this.log.info({ removed }, 'objects of the ended session that no archive references were removed');
    }
  }
}
