// One proxy session inside the repository service: the policy of DESIGN.md §4, enforced again on
// what the (unprivileged) proxy forwards. The proxy has already checked the job-key MAC and
// decrypted; everything that decides what reaches the repository happens here, with the real key:
//  * every put is decompressed and its id recomputed before it is encrypted with the real key;
//  * the client's manifest may only add, replace or drop its own reserved archive and that
//    archive's checkpoints; each new archive must verify under the job key, every object it
//    references must have been uploaded and verified in this job or handed to this client, and it
//    is re-signed (TAM) with the real key before it enters the real manifest, with server time;
//  * deletes only of this job's own checkpoint archives; gets only of this session's archives;
//  * manifest write + commit are one critical section per repository, and a commit never
//    publishes another job's archive (those enter the manifest only through their own merge).
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { Logger } from '../../../infra/logger.js';
import { parseArchive, retamArchive } from '../../borg/archive.js';
import { compressNone, decompress } from '../../borg/compression.js';
import { ItemStreamParser } from '../../borg/items.js';
import type { BorgKey } from '../../borg/keys.js';
import { parseManifest, type Manifest, type ManifestArchive } from '../../borg/manifest.js';
import { MAX_DATA_SIZE } from '../../borg/msgpack.js';
import { AES_OVERHEAD, decryptObject, encryptObject, idHash } from '../../borg/objects.js';
import type { ReplyError } from '../../protocol/replies.js';
import type { RefEntry } from '../archive-refs.js';
import type { RefMap } from '../chunk-store.js';
import type { CryptoPool } from '../crypto-pool.js';
import { MAX_PLAINTEXT, type CommittedManifest, type LiveSession, type RepositoryHandle } from '../repository.js';
import { nowBorgTime } from '../../borg/timestamps.js';
import { UpstreamError, type Upstream } from '../upstream.js';

/** Raised for anything the client was not allowed to do; the service records it and ends the job. */
export class PolicyViolation extends Error {
  override name = 'PolicyViolation';
  constructor(
    readonly kind: string,
    readonly detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

/** A refusal the client sees as a Borg exception, without ending the job. */
export class SessionError extends Error {
  override name = 'SessionError';
  constructor(
    readonly cls: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the service prepared for and remembers about a job (persisted in the job's state file). */
export interface JobContext {
  jobId: string;
  clientId: string;
  repositoryId: string;
  /** Reserved archive name as a binary string (latin1 of the UTF-8 bytes), as manifests key it. */
  archiveName: string;
  jobKey: BorgKey;
  /** Objects this client may reference without uploading them (its dedup scope). */
  handed: RefMap;
  /** The manifest plaintext the client is served (byte-identical each time: its cache matches it). */
  servedManifest: Buffer;
  /** Archive ids as the client knows them → ids in the real repository (re-signed copies). */
  idMap: Map<string, string>;
  /** Put ids are appended here before any commit, so leftovers of a failed job can be found. */
  putLogPath: string;
}

export interface SessionHooks {
  /** Persists what a commit changed for the job (served manifest, id map). */
  saveJobState(ctx: JobContext): void;
  /** Counters of the job (bytes through the proxy, new objects). */
  stats: { uploadedBytes: number; uploadedObjects: number; newObjects: number; newBytes: number };
  /** Job-key counters: the next free value, and a commit of the client's reservation. */
  allocateJobNonce(blocks: bigint): Promise<bigint>;
}

interface HeldCommit {
  release: () => void;
  previous: CommittedManifest;
  next: CommittedManifest;
  /** Real archive objects to delete right before the commit (replaced checkpoints). */
  deletes: Buffer[];
  /** New archives and their reference indexes, for the chunk store after the commit. */
  added: Array<{ realIdHex: string; refs: RefMap }>;
  removedArchives: string[];
  clientManifest: Buffer;
}

interface SessionArchive {
  name: string;
  /** The id the client gave it (of its own copy, signed with the job key). */
  clientIdHex: string;
  plaintext: Buffer;
  realId: Buffer;
  refs: RefMap;
}

const checkpointSuffix = /^\.checkpoint(\.\d+)?$/;
/** Item-stream chunks (≤ 512 KiB each, borg's items chunker) read ahead while checking an archive. */
const ITEMS_READ_WINDOW = 16;
/** What a put's data reference is replaced with once the data is handed on. */
export const NO_DATA = Buffer.alloc(0);

export class Session implements LiveSession {
  /** Objects uploaded in this session: verified plaintext size and stored size. */
  readonly puts = new Map<string, { size: number; csize: number }>();
  /** Ids claimed synchronously before verification, so a concurrent cleanup never removes them. */
  readonly claims = new Set<string>();
  private readonly unloggedPuts: Buffer[] = [];
  private readonly archives = new Map<string, SessionArchive>();
  private inflight = new Set<Promise<unknown>>();
  private held: HeldCommit | undefined;
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

  /** Names this job may create: its archive and that archive's checkpoints (BORG_PROTOCOL.md §5.4). */
  isOwnName(name: string): boolean {
    return name === this.ctx.archiveName || (name.startsWith(this.ctx.archiveName) && checkpointSuffix.test(name.slice(this.ctx.archiveName.length)));
  }

  isCheckpointName(name: string): boolean {
    return name !== this.ctx.archiveName && this.isOwnName(name);
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
    this.hooks.stats.uploadedBytes += object.length;
    this.hooks.stats.uploadedObjects++;
    // Known already (an archive references it, or some session stored it): verify, don't rewrite.
    const known = this.repo.chunks.get(hex) ?? this.repo.recentPuts.get(hex);
    this.claims.add(hex);
    // Job keys are AES types, so the payload is the object minus its 41-byte envelope.
    const iv = known ? undefined : await this.repo.nonces.allocate(object.length - AES_OVERHEAD);
    // `object` is not touched after this call: an owned frame moves to the worker thread, any
    // other is copied for it (with the batch's others, at the end of this event-loop turn).
    // Nor is it kept while the put waits (below, the same for the re-encrypted object once it
    // is written): data that outlives two young-generation collections is freed only by a full
    // one, and with many puts in flight during a big backup that made the service's main
    // thread spend more than a second in full GCs.
    const verifying = this.pool.verify({ keyRef: this.repo.keyRef, jobKeyRef: this.jobKeyRef, id, object, maxPlaintext: MAX_PLAINTEXT, iv, transfer: owned });
    object = NO_DATA;
    const r = await verifying;
    if (!r.ok) {
      this.claims.delete(hex);
      throw new PolicyViolation(r.reason === 'undecodable' ? 'undecodable-object' : r.reason, `put ${hex}: ${r.detail}`);
    }
    const size = r.plaintextLength;
    let csize: number;
    if (known) csize = known.csize;
    else {
      csize = r.object!.length;
      const stored = this.up.call('put', { id, data: r.object! });
      r.object = undefined;
      await stored;
      this.repo.recentPuts.set(hex, { size, csize });
      this.hooks.stats.newObjects++;
      this.hooks.stats.newBytes += csize;
    }
    this.puts.set(hex, { size, csize });
    this.unloggedPuts.push(id);
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
    if (known === undefined || !this.isCheckpointName(known)) {
      throw new PolicyViolation('forbidden-delete', `delete of object ${hex}, which is not a checkpoint of this job`);
    }
    // Nothing to do now: the object leaves with the manifest write that drops its entry.
  }

  // ---- manifest merge and commit ----------------------------------------------------------------

  async putManifest(object: Buffer): Promise<void> {
    if (this.held) throw new PolicyViolation('manifest-twice', 'a second manifest write before commit');
    let payload: Buffer;
    try {
      payload = decryptObject(this.ctx.jobKey, object).payload;
    } catch (err) {
      throw new PolicyViolation('bad-mac', `manifest: ${(err as Error).message}`);
    }
    let plaintext: Buffer;
    try {
      plaintext = (await decompress(payload, { maxOutput: MAX_DATA_SIZE })).data;
    } catch (err) {
      throw new PolicyViolation('undecodable-manifest', (err as Error).message);
    }
    let next: Manifest;
    try {
      next = parseManifest(this.ctx.jobKey, plaintext);
    } catch (err) {
      throw new PolicyViolation('manifest-tamper', `manifest does not verify under the job key: ${(err as Error).message}`);
    }

    // Diff against what the client was given: only its own names may change.
    const added: Array<[string, ManifestArchive]> = [];
    const removed: string[] = [];
    for (const [name, a] of next.archives) {
      const before = this.base.archives.get(name);
      if (before && before.id.equals(a.id)) continue;
      if (!this.isOwnName(name)) {
        throw new PolicyViolation('manifest-tamper', before ? `overwrites archive ${show(name)}, which is not this job's` : `adds archive ${show(name)}; this job may only write ${show(this.ctx.archiveName)}`);
      }
      added.push([name, a]);
    }
    for (const name of this.base.archives.keys()) {
      if (next.archives.has(name)) continue;
      if (!this.isCheckpointName(name)) throw new PolicyViolation('manifest-tamper', `drops archive ${show(name)}, which it may not remove`);
      removed.push(name);
    }

    // Validate and re-sign new archives before taking the repository's commit lock.
    const newArchives: Array<{ name: string; entry: SessionArchive }> = [];
    for (const [name, a] of added) newArchives.push({ name, entry: await this.acceptArchive(name, a.id) });

    const release = await this.repo.commitLock.acquire();
    try {
      const previous = this.repo.manifest;
      const real = new Map(previous.parsed.archives);
      const deletes: Buffer[] = [];
      const removedArchives: string[] = [];
      const dropReal = (name: string) => {
        const cur = real.get(name);
        if (!cur) return;
        // Only entries this job put there (through this or an earlier session) may go.
        if (![...this.ctx.idMap.values()].includes(cur.id.toString('hex'))) return;
        real.delete(name);
        deletes.push(cur.id);
        removedArchives.push(cur.id.toString('hex'));
      };
      for (const name of removed) dropReal(name);
      const time = nowBorgTime();
      for (const { name, entry } of newArchives) {
        if (real.has(name)) {
          const cur = real.get(name)!;
          // Names are reserved per job, so only someone working on the repository by hand can
          // have taken this one: the job fails, but the client did nothing wrong.
          if (![...this.ctx.idMap.values()].includes(cur.id.toString('hex'))) throw new SessionError('ProxyError', `archive ${show(name)} already exists in the repository and was not written by this job`);
          dropReal(name);
        }
        real.set(name, { id: entry.realId, time });
      }
      const next2 = await this.repo.writeManifest(this.up, real);
      this.held = {
        release,
        previous,
        next: next2,
        deletes,
        added: newArchives.map(({ entry }) => ({ realIdHex: entry.realId.toString('hex'), refs: entry.refs })),
        removedArchives,
        clientManifest: plaintext,
      };
      this.base = next;
      for (const { entry } of newArchives) this.ctx.idMap.set(entry.clientIdHex, entry.realId.toString('hex'));
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * A new archive of this job: it must be an object uploaded in this session that parses as an
   * archive of that name under the job key; every object it references must be known to this
   * job. Stores the copy re-signed with the real key (§9.6) and returns its reference index.
   */
  private async acceptArchive(name: string, clientId: Buffer): Promise<SessionArchive> {
    const hex = clientId.toString('hex');
    const existing = this.archives.get(hex);
    if (existing) return existing;
    if (!this.puts.has(hex)) throw new PolicyViolation('unknown-archive', `manifest lists ${show(name)} → ${hex}, which was not uploaded in this session`);
    const { plaintext } = await this.repo.readObject(this.up, clientId);
    let meta;
    try {
      meta = parseArchive(this.ctx.jobKey, plaintext);
    } catch (err) {
      throw new PolicyViolation('bad-archive', `${show(name)}: ${(err as Error).message}`);
    }
    if (meta.name !== name) throw new PolicyViolation('bad-archive', `archive object is named ${show(meta.name)} but listed as ${show(name)}`);

    const refs: RefMap = new Map();
    const ref = (idHex: string, size: number, csize: number) => {
      const e = refs.get(idHex);
      if (e) e.refcount++;
      else refs.set(idHex, { refcount: 1, size, csize });
    };
    const known = (idHex: string): RefEntry | { size: number; csize: number } | undefined => {
      const p = this.puts.get(idHex);
      if (p) return p;
      const h = this.ctx.handed.get(idHex);
      // A handed object must still exist: prune/compact may have removed it since the job was prepared.
      if (h) return this.repo.chunks.get(idHex);
      return undefined;
    };
    for (const itemsId of meta.items) {
      const ih = itemsId.toString('hex');
      const k = known(ih);
      if (!k) throw this.unknownReference(ih, name);
      ref(ih, k.size, k.csize);
    }
    // The item stream is read back from the repository with a window of requests in flight:
    // one round trip to borg serve per metadata chunk, one after the other, was most of the
    // fixed cost of an unchanged backup with many files. Chunks parsed before from the same
    // parser state (the previous archive's, when little changed) are not read again at all.
    const cache = this.repo.itemsCache;
    const repoId = this.repo.info.id;
    const reads = new Map<number, Promise<{ plaintext: Buffer }>>();
    const read = (i: number) => {
      const p = this.repo.readObject(this.up, meta.items[i]!);
      p.catch(() => {}); // awaited below, in order; a failure surfaces there
      reads.set(i, p);
    };
    let requested = 0;
    const parser = new ItemStreamParser();
    const bad = (err: unknown) => new PolicyViolation('bad-archive', `${show(name)}: item stream: ${(err as Error).message}`);
    for (let i = 0; i < meta.items.length; i++) {
      for (; requested < Math.min(i + ITEMS_READ_WINDOW, meta.items.length); requested++) {
        if (!cache.hasChunk(`${repoId}/${meta.items[requested]!.toString('hex')}`)) read(requested);
      }
      const itemsKey = `${repoId}/${meta.items[i]!.toString('hex')}`;
      const entry = parser.state();
      const hit = cache.get(itemsKey, entry);
      let ids: string[];
      if (hit) {
        reads.delete(i);
        parser.resume(hit.exit, hit.items, hit.ids.length / 32);
        ids = new Array<string>(hit.ids.length / 32);
        for (let k = 0; k < ids.length; k++) ids[k] = hit.ids.toString('hex', 32 * k, 32 * k + 32);
      } else {
        if (!reads.has(i)) read(i);
        const chunk = await reads.get(i)!;
        reads.delete(i);
        const itemsBefore = parser.items;
        try {
          ids = parser.feed(chunk.plaintext);
        } catch (err) {
          throw bad(err);
        }
        cache.set(itemsKey, entry, { exit: parser.state(), ids: Buffer.from(ids.join(''), 'hex'), items: parser.items - itemsBefore });
      }
      for (const h of ids) {
        const kk = known(h);
        if (!kk) throw this.unknownReference(h, name);
        ref(h, kk.size, kk.csize);
      }
    }
    try {
      parser.end();
    } catch (err) {
      throw bad(err);
    }
    const resigned = retamArchive(plaintext, this.ctx.jobKey, this.repo.key);
    const realId = idHash(this.repo.key, resigned);
    const obj = await this.repo.sealObject(resigned);
    await this.up.call('put', { id: realId, data: obj });
    this.puts.set(realId.toString('hex'), { size: resigned.length, csize: obj.length });
    this.unloggedPuts.push(realId);
    ref(realId.toString('hex'), resigned.length, obj.length);
    const entry: SessionArchive = { name, clientIdHex: hex, plaintext, realId, refs };
    this.archives.set(hex, entry);
    return entry;
  }

  private unknownReference(idHex: string, name: string): PolicyViolation | SessionError {
    // Handed to the client, then removed by a prune between the job's preparation and now: the
    // client did nothing wrong, but this archive cannot be committed; the next job is prepared
    // from what is there.
    const pruned = this.ctx.handed.has(idHex) && !this.repo.chunks.has(idHex);
    if (pruned) return new SessionError('ProxyError', `${show(name)} references ${idHex}, which was pruned from the repository after this job was prepared; run the backup again`);
    return new PolicyViolation('unknown-chunk-reference', `${show(name)} references ${idHex}, which this client neither uploaded nor was given`);
  }

  async commit(): Promise<void> {
    if (!this.held) {
      // A commit without a manifest write changes nothing visible; still serialized with merges.
      await this.repo.commitLock.run(() => this.repo.commit(this.up));
      return;
    }
    const h = this.held;
    try {
      for (const id of h.deletes) {
        try {
          await this.up.call('delete', { id });
        } catch (err) {
          if (!(err instanceof UpstreamError && err.cls === 'ObjectNotFound')) throw err;
        }
      }
      // The client-id copies of new archives were only needed for validation.
      for (const [clientHex, a] of this.archives) {
        if (h.added.some((x) => x.realIdHex === a.realId.toString('hex'))) {
          try {
            await this.up.call('delete', { id: Buffer.from(clientHex, 'hex') });
          } catch (err) {
            if (!(err instanceof UpstreamError && err.cls === 'ObjectNotFound')) throw err;
          }
        }
      }
      await this.repo.commit(this.up);
      this.repo.setCommittedManifest(h.next);
      for (const hex of h.removedArchives) this.repo.chunks.removeArchive(hex);
      for (const a of h.added) {
        this.repo.chunks.addArchive(a.realIdHex, a.refs);
        for (const id of a.refs.keys()) this.repo.recentPuts.delete(id);
      }
      this.ctx.servedManifest = h.clientManifest;
      this.hooks.saveJobState(this.ctx);
      this.held = undefined;
    } catch (err) {
      await this.revert().catch((e: Error) => this.log.error({ err: e.message }, 'reverting the manifest failed'));
      throw err;
    } finally {
      h.release();
    }
  }

  /** Undoes an uncommitted manifest write: the previous manifest object is written back. */
  private async revert(): Promise<void> {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    try {
      await this.up.call('put', { id: Buffer.alloc(32), data: h.previous.object });
      this.base = parseManifest(this.ctx.jobKey, this.ctx.servedManifest);
    } finally {
      h.release();
    }
  }

  /** `rollback`: borg serve's transaction is shared by all sessions, so only our part is undone. */
  async rollback(): Promise<void> {
    await this.revert();
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
    await this.revert().catch((e: Error) => this.log.error({ err: e.message, job: this.ctx.jobId }, 'reverting the manifest failed'));
    this.logPuts();
    this.pool.forgetKey(this.jobKeyRef);
    this.repo.sessions.delete(this);
    if (!this.up.isClosed) {
      const removed = await this.repo.sweepJob(this.up, this.ctx.putLogPath, this.ctx.jobId);
      if (removed) this.log.info({ removed }, 'objects of the ended session that no archive references were removed');
    }
  }
}

/** An archive name for messages (binary string → text, control characters escaped). */
function show(name: string): string {
  return JSON.stringify(Buffer.from(name, 'latin1').toString('utf8'));
}

export function replyErrorOf(err: unknown): ReplyError {
  const e = replyErrorOfUncapped(err);
  // The proxy refuses longer messages (proxy/protocol/replies.ts); borg's own errors can be long.
  return { ...e, message: e.message.slice(0, 4000) };
}

function replyErrorOfUncapped(err: unknown): ReplyError {
  if (err instanceof PolicyViolation) return { cls: 'ProxyPolicyError', message: `BorgCube refused this: ${err.message}`, fatal: true };
  if (err instanceof SessionError) return { cls: err.cls, message: err.message };
  if (err instanceof UpstreamError) return { cls: err.cls, message: err.message, fatal: true };
  return { cls: 'ProxyError', message: `BorgCube repository service: ${(err as Error).message}`, fatal: true };
}
