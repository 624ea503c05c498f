// A new archive of a backup job, checked before it may enter the real manifest: it must be an
// object uploaded in this session that parses as an archive of that name under the job key, and
// every object it references must be known to this job. Stored re-signed with the real key (§9.6).
import { parseArchive, retamArchive, type ArchiveMeta } from '../../borg/archive.js';
import { ItemStreamParser } from '../../borg/items.js';
import { idHash } from '../../borg/objects.js';
import type { RefEntry } from '../archive-refs.js';
import type { RefMap } from '../chunk-store.js';
import type { PutSizes } from '../put-index.js';
import type { RepositoryHandle } from '../repository.js';
import type { Upstream } from '../upstream.js';
import { show, type JobContext } from './backup-context.js';
import { PolicyViolation, SessionError } from './errors.js';

/** Item-stream chunks (≤ 512 KiB each, borg's items chunker) read ahead while checking an archive. */
const ITEMS_READ_WINDOW = 16;

export interface SessionArchive {
  name: string;
  /** The id the client gave it (of its own copy, signed with the job key). */
  clientIdHex: string;
  plaintext: Buffer;
  realId: Buffer;
  refs: RefMap;
}

/** The parts of a backup session an archive check reads and adds to. */
export interface ArchiveScope {
  readonly ctx: JobContext;
  readonly repo: RepositoryHandle;
  readonly up: Upstream;
  /** Objects uploaded in this session: verified plaintext size and stored size. */
  readonly puts: { has(idHex: string): boolean; get(idHex: string): PutSizes | undefined; set(idHex: string, s: PutSizes): void };
  /** An object stored for the session (goes to the job's put log). */
  stored(id: Buffer): void;
}

type Sizes = RefEntry | { size: number; csize: number };

export async function acceptArchive(s: ArchiveScope, name: string, clientId: Buffer): Promise<SessionArchive> {
  const hex = clientId.toString('hex');
  if (!s.puts.has(hex)) throw new PolicyViolation('unknown-archive', `manifest lists ${show(name)} → ${hex}, which was not uploaded in this session`);
  const { plaintext } = await s.repo.readObject(s.up, clientId);
  let meta: ArchiveMeta;
  try {
    meta = parseArchive(s.ctx.jobKey, plaintext);
  } catch (err) {
    throw new PolicyViolation('bad-archive', `${show(name)}: ${(err as Error).message}`);
  }
  if (meta.name !== name) throw new PolicyViolation('bad-archive', `archive object is named ${show(meta.name)} but listed as ${show(name)}`);

  const refs: RefMap = new Map();
  const ref = (idHex: string) => {
    const k = known(s, idHex);
    if (!k) throw unknownReference(s, idHex, name);
    count(refs, idHex, k.size, k.csize);
  };
  for (const itemsId of meta.items) ref(itemsId.toString('hex'));
  await forEachItemChunkRef(s, meta, name, ref);

  // Re-signed with the real key: borg ≥ 1.2.5 (1.4 included) refuses, and its check removes, an
  // archive whose TAM does not verify (borg 1.4.0 archive.py:474-477, 2084-2092; changelog
  // CVE-2023-36811). Clients 1.2.4 and 1.4 both write job-key TAMs, which retamArchive requires.
  const resigned = retamArchive(plaintext, s.ctx.jobKey, s.repo.key);
  const realId = idHash(s.repo.key, resigned);
  const obj = await s.repo.sealObject(resigned);
  await s.up.call('put', { id: realId, data: obj });
  s.puts.set(realId.toString('hex'), { size: resigned.length, csize: obj.length });
  s.stored(realId);
  count(refs, realId.toString('hex'), resigned.length, obj.length);
  return { name, clientIdHex: hex, plaintext, realId, refs };
}

function count(refs: RefMap, idHex: string, size: number, csize: number): void {
  const e = refs.get(idHex);
  if (e) e.refcount++;
  else refs.set(idHex, { refcount: 1, size, csize });
}

/**
 * Sizes of an object this job may reference: uploaded in this session, or handed and still there.
 * Always the sizes this client's own uploads gave it, never those of the repository's copy,
 * which may be another tenant's (its next cache would show them, §4.12).
 */
function known(s: ArchiveScope, idHex: string): Sizes | undefined {
  const p = s.puts.get(idHex);
  if (p) return p;
  // A handed object must still exist: prune/compact may have removed it since the job was prepared.
  const handed = s.ctx.handed.get(idHex);
  if (handed && s.repo.chunks.has(idHex)) return handed;
  return undefined;
}

/**
 * Calls `ref` for each chunk id in the archive's item stream. The stream is read back from the
 * repository with a window of requests in flight (one round trip per metadata chunk was most of
 * the fixed cost of an unchanged backup), and chunks parsed before from the same parser state
 * (the previous archive's, when little changed) are not read again at all.
 */
async function forEachItemChunkRef(s: ArchiveScope, meta: ArchiveMeta, name: string, ref: (idHex: string) => void): Promise<void> {
  const cache = s.repo.itemsCache;
  const repoId = s.repo.info.id;
  const reads = new Map<number, Promise<{ plaintext: Buffer }>>();
  const read = (i: number) => {
    const p = s.repo.readObject(s.up, meta.items[i]!);
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
    for (const h of ids) ref(h);
  }
  try {
    parser.end();
  } catch (err) {
    throw bad(err);
  }
}

function unknownReference(s: ArchiveScope, idHex: string, name: string): PolicyViolation | SessionError {
  // Handed to the client, then removed by a prune between the job's preparation and now: the
  // client did nothing wrong, but this archive cannot be committed; the next job is prepared
  // from what is there.
  const pruned = s.ctx.handed.has(idHex) && !s.repo.chunks.has(idHex);
  if (pruned) return new SessionError('ProxyError', `${show(name)} references ${idHex}, which was pruned from the repository after this job was prepared; run the backup again`);
  return new PolicyViolation('unknown-chunk-reference', `${show(name)} references ${idHex}, which this client neither uploaded nor was given`);
}
