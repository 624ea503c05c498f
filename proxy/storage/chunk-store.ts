// The repository service's own view of which objects the archives of a repository reference —
// what borg's client-side cache is for a normal client (BORG_PROTOCOL.md §6.3, §6.5):
//  * one index per archive (`archives/<archive id>.idx`), written when BorgCube commits the
//    archive (sizes from objects it verified itself) or built by reading the archive;
//  * the repository index, the sum of the per-archive indexes of the archives in the manifest.
// It answers "does this object exist?" (dedup across clients happens here, §9.7), "may this
// archive reference it?" and builds the chunk index handed to a client for a job.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../infra/logger.js';
import type { ManifestArchive } from '../borg/manifest.js';
import type { RefEntry } from './archive-refs.js';
import { ChunkIndex, MAX_REFCOUNT } from '../borg/hashindex.js';

const ENTRY = 44; // id(32) ‖ refcount u32le ‖ size u32le ‖ csize u32le

export type RefMap = Map<string, RefEntry>;

export function encodeRefs(refs: RefMap): Buffer {
  const b = Buffer.allocUnsafe(refs.size * ENTRY);
  let o = 0;
  for (const [hex, e] of refs) {
    b.write(hex, o, 'hex');
    b.writeUInt32LE(Math.min(e.refcount, MAX_REFCOUNT), o + 32);
    b.writeUInt32LE(e.size >>> 0, o + 36);
    b.writeUInt32LE(e.csize >>> 0, o + 40);
    o += ENTRY;
  }
  return b;
}

/** A chunk index's entries in this file format (its buckets have the same layout): handed.idx. */
export function encodeIndexRefs(index: ChunkIndex): Buffer {
  return index.serializeCompact().subarray(18);
}

/** Each entry of a file in this format (an archive index, handed.idx); `id` is a view into `b`. */
function forEachRef(b: Buffer, fn: (id: Buffer, refcount: number, size: number, csize: number) => void): void {
  if (b.length % ENTRY !== 0) throw new Error('chunk index file has a torn entry');
  for (let o = 0; o < b.length; o += ENTRY) fn(b.subarray(o, o + 32), b.readUInt32LE(o + 32), b.readUInt32LE(o + 36), b.readUInt32LE(o + 40));
}

export function decodeRefs(b: Buffer): RefMap {
  const m: RefMap = new Map();
  forEachRef(b, (id, refcount, size, csize) => m.set(id.toString('hex'), { refcount, size, csize }));
  return m;
}

/** What a client is handed for a set of archives: borg's `chunks` cache file and handed.idx. */
export interface HandedFiles {
  readonly entries: number;
  /** The chunk index as borg's cache keeps it (ChunkIndex.serialize). */
  readonly chunksFile: Buffer;
  /** The same entries in this module's format (encodeIndexRefs): the session's handed set. */
  readonly refsFile: Buffer;
}

/** The files prepareBackup writes for a chunk index it hands out. */
export function handedFilesOf(index: ChunkIndex): HandedFiles {
  return { entries: index.size, chunksFile: index.serialize(), refsFile: encodeIndexRefs(index) };
}

/** Bytes of handed files kept for clients' next jobs (see handedFiles). */
const HANDED_MEMO_BYTES = 64 * 1024 * 1024;

export class ChunkStore {
  /** The repository index: every object referenced by an archive in the committed manifest. */
  private master: RefMap = new Map();
  /** Archive ids (hex) summed into `master`. */
  private covered = new Set<string>();
  private readonly archivesDir: string;
  /** handedFiles results by their sorted archive ids, least recently used first. */
  private readonly handedMemo = new Map<string, HandedFiles>();
  private handedMemoBytes = 0;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.archivesDir = join(dir, 'archives');
    mkdirSync(this.archivesDir, { recursive: true, mode: 0o700 });
  }

  get size(): number {
    return this.master.size;
  }

  has(idHex: string): boolean {
    return this.master.has(idHex);
  }

  get(idHex: string): RefEntry | undefined {
    return this.master.get(idHex);
  }

  entries(): IterableIterator<[string, RefEntry]> {
    return this.master.entries();
  }

  archiveIndexPath(archiveIdHex: string) {
    return join(this.archivesDir, `${archiveIdHex}.idx`);
  }

  readArchiveIndex(archiveIdHex: string): RefMap | undefined {
    const b = this.readArchiveIndexFile(archiveIdHex);
    return b && decodeRefs(b);
  }

  private readArchiveIndexFile(archiveIdHex: string): Buffer | undefined {
    const p = this.archiveIndexPath(archiveIdHex);
    return existsSync(p) ? readFileSync(p) : undefined;
  }

  writeArchiveIndex(archiveIdHex: string, refs: RefMap) {
    const p = this.archiveIndexPath(archiveIdHex);
    writeFileSync(`${p}.tmp`, encodeRefs(refs), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
    this.forgetHandedOf(archiveIdHex);
  }

  /**
   * Makes the repository index match the manifest's archives: reads archives it has no index for
   * (written outside BorgCube), drops indexes of archives that are gone.
   */
  async sync(archives: ReadonlyMap<string, ManifestArchive>, readRefs: (archiveId: Buffer) => Promise<RefMap>): Promise<void> {
    const live = new Map<string, Buffer>();
    for (const a of archives.values()) live.set(a.id.toString('hex'), a.id);
    let built = 0;
    for (const [hex, id] of live) {
      if (existsSync(this.archiveIndexPath(hex))) continue;
      const refs = await readRefs(id);
      this.fillSizes(refs);
      this.writeArchiveIndex(hex, refs);
      built++;
    }
    const same = live.size === this.covered.size && [...live.keys()].every((h) => this.covered.has(h));
    if (!same) {
      const master: RefMap = new Map();
      for (const hex of live.keys()) addInto(master, this.readArchiveIndex(hex)!);
      this.master = master;
      this.covered = new Set(live.keys());
    }
    // Indexes of archives no longer in the manifest (pruned, deleted) are useless now.
    for (const f of readdirSync(this.archivesDir)) {
      const hex = f.replace(/\.idx$/, '');
      if (!f.endsWith('.idx') || live.has(hex)) continue;
      rmSync(join(this.archivesDir, f), { force: true });
      this.forgetHandedOf(hex);
    }
    if (built || !same) this.log.info({ archives: live.size, objects: this.master.size, built }, 'chunk index synced');
  }

  /** A committed archive joins the index. */
  addArchive(archiveIdHex: string, refs: RefMap) {
    this.writeArchiveIndex(archiveIdHex, refs);
    if (this.covered.has(archiveIdHex)) return;
    addInto(this.master, refs);
    this.covered.add(archiveIdHex);
  }

  /** A committed archive left the manifest. */
  removeArchive(archiveIdHex: string) {
    const refs = this.readArchiveIndex(archiveIdHex);
    if (refs && this.covered.delete(archiveIdHex)) {
      for (const [hex, e] of refs) {
        const m = this.master.get(hex);
        if (!m) continue;
        m.refcount -= e.refcount;
        if (m.refcount <= 0) this.master.delete(hex);
      }
    }
    rmSync(this.archiveIndexPath(archiveIdHex), { force: true });
    this.forgetHandedOf(archiveIdHex);
  }

  /**
   * The sum of some archives' indexes (a client's own archives: its dedup scope) as a borg chunk
   * index, read straight from the per-archive files: what a job's client is handed. No per-entry
   * strings or objects, which made this the slowest part of preparing a job of a client with a
   * large tree. Entries without a verified size are left out (borg refuses a cache entry with a
   * wrong size; the client uploads those again).
   */
  handedIndex(archiveIdsHex: Iterable<string>): ChunkIndex {
    const files: Buffer[] = [];
    for (const hex of archiveIdsHex) {
      const b = this.readArchiveIndexFile(hex);
      if (b) files.push(b);
    }
    // Sized for the largest archive up front (the union holds at least that many): growing from
    // empty rehashed everything several times, a good part of preparing an unchanged backup.
    const index = new ChunkIndex(Math.max(0, ...files.map((b) => Math.floor(b.length / ENTRY))));
    const add = (id: Buffer, refcount: number, size: number, csize: number) => {
      const old = index.get(id);
      if (!old) index.set(id, { refcount, size, csize });
      else index.set(id, { refcount: Math.min(old.refcount + refcount, MAX_REFCOUNT), size: old.size || size, csize: old.size ? old.csize : csize });
    };
    for (const b of files) forEachRef(b, (id, refcount, size, csize) => add(id, Math.min(refcount, MAX_REFCOUNT), size, csize));
    const unsized: Buffer[] = [];
    for (const [id, e] of index) if (e.size === 0) unsized.push(Buffer.from(id));
    for (const id of unsized) index.delete(id);
    return index;
  }

  /**
   * handedIndex's result as the files prepareBackup writes, kept for the next job that asks for
   * the same archives: a client's next backup is handed what its last one left, and building and
   * serializing that index was a good part of preparing an unchanged backup. Exact, because an
   * archive's index file is written and removed only here, which forgets what it was part of.
   */
  handedFiles(archiveIdsHex: Iterable<string>): HandedFiles {
    const ids = [...new Set(archiveIdsHex)].sort();
    const key = ids.join(',');
    const kept = this.handedMemo.get(key);
    if (kept) {
      this.handedMemo.delete(key);
      this.handedMemo.set(key, kept);
      return kept;
    }
    const files = handedFilesOf(this.handedIndex(ids));
    const bytes = files.chunksFile.length + files.refsFile.length;
    if (bytes <= HANDED_MEMO_BYTES / 4) {
      this.handedMemo.set(key, files);
      this.handedMemoBytes += bytes;
      for (const oldest of this.handedMemo.keys()) {
        if (this.handedMemoBytes <= HANDED_MEMO_BYTES) break;
        this.forgetHanded(oldest);
      }
    }
    return files;
  }

  private forgetHandedOf(archiveIdHex: string) {
    for (const key of [...this.handedMemo.keys()]) if (key.includes(archiveIdHex)) this.forgetHanded(key);
  }

  private forgetHanded(key: string) {
    const f = this.handedMemo.get(key);
    if (!f) return;
    this.handedMemo.delete(key);
    this.handedMemoBytes -= f.chunksFile.length + f.refsFile.length;
  }

  /** Every object of the repository as a borg chunk index (dedup scope `repository`). */
  masterIndex(): ChunkIndex {
    const index = new ChunkIndex(this.master.size);
    for (const [hex, e] of this.master) if (e.size) index.set(Buffer.from(hex, 'hex'), { refcount: Math.min(e.refcount, MAX_REFCOUNT), size: e.size, csize: e.csize });
    return index;
  }

  /** Sizes the item stream does not give us (foreign archives) come from what we already know. */
  private fillSizes(refs: RefMap) {
    for (const [hex, e] of refs) {
      if (e.size) continue;
      const known = this.master.get(hex);
      if (known) {
        e.size = known.size;
        e.csize = known.csize;
      }
    }
  }
}

function addInto(target: RefMap, refs: RefMap) {
  for (const [hex, e] of refs) {
    const t = target.get(hex);
    if (t) {
      t.refcount += e.refcount;
      if (!t.size && e.size) {
        t.size = e.size;
        t.csize = e.csize;
      }
    } else target.set(hex, { ...e });
  }
}
