// A restore's objects read straight from the repository's segment files, found through its
// committed index (index.N), instead of one `borg serve` round trip each: that round trip was most
// of the server's CPU per object of a restore (docs/performance.md, "Restore: reading segments").
//
// Read-only and never trusted blindly: the index is the newest `index.N` when the reader opened
// (borg writes it whole and renames it into place; it is the last commit's, unless borg died
// between a commit and its index, which its next open repairs), segment files are never rewritten
// in place, and every object is still checked by its caller (the entry must be a put of the asked
// id, the object must open with the real key). Anything else — an id the snapshot lacks, a segment
// `borg compact` removed since, a short read, a foreign header — answers undefined, and the
// caller asks `borg serve` instead. An unlinked file stays readable through its open descriptor,
// so a compaction during the restore at worst makes those objects slower.
//
// The reads are synchronous: on this VM handing a read to libuv's thread pool cost ~48 µs of the
// service's main thread (waking a pool thread), more than the read itself (3–14 µs from the page
// cache). An object (up to 20 MiB) that is not in the page cache blocks that thread for its disk
// reads, as the job's allowed-id lookup (IdFile) does; a session reads at most READS_IN_FLIGHT
// objects before their reseals let the thread go on (sessions/restore.ts).
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../infra/logger.js';
import { NS_BUCKET, NS_HEADER, nsLookup, parseNsIndexHeader, type NsIndexHeader, type ObjectLocation } from '../borg/ns-index.js';
import { PUT_HEADER, putEntrySize } from '../borg/segments.js';

/** Buckets read per probe step: a lookup nearly always ends within them (the load is at most 75%). */
const PROBE_BUCKETS = 16;
/** First read of an entry: header and object of most small-file chunks in one read. */
const FIRST_READ = 16 * 1024;
/** Segment files a reader keeps open (a restore reads a few at a time, mostly in order). */
const MAX_OPEN_SEGMENTS = 16;

/** An object read from a segment file. */
export interface StoredObject {
  object: Buffer;
  /** `object` is an allocation of its own (it may be handed to another thread without a copy). */
  owned: boolean;
}

/** The newest `index.N` of a repository folder, or undefined. */
function newestIndex(repoPath: string): number | undefined {
  let newest: number | undefined;
  for (const name of readdirSync(repoPath)) {
    const m = /^index\.(\d+)$/.exec(name);
    if (m && (newest === undefined || Number(m[1]) > newest)) newest = Number(m[1]);
  }
  return newest;
}

export class SegmentReader {
  /** Open segment files, least recently used first; null: the file is gone. */
  private readonly segments = new Map<number, number | null>();
  /** Where each entry's first bytes are read (the reads are synchronous: one at a time). */
  private readonly scratch = Buffer.allocUnsafeSlow(FIRST_READ);
  private closed = false;

  private constructor(
    private readonly repoPath: string,
    private readonly indexFd: number,
    private readonly header: NsIndexHeader,
    private readonly segmentsPerDir: number,
  ) {}

  /**
   * Opens the newest committed index of the repository at `repoPath`; undefined (with the reason
   * logged) when there is none that can be read, and then every object comes from `borg serve`.
   */
  static open(repoPath: string, log: Logger): SegmentReader | undefined {
    let fd: number | undefined;
    try {
      const config = readFileSync(join(repoPath, 'config'), 'utf8');
      const perDir = Number(/^\s*segments_per_dir\s*=\s*(\d+)\s*$/m.exec(config)?.[1] ?? NaN);
      if (!Number.isSafeInteger(perDir) || perDir < 1) throw new Error('the repository config names no segments_per_dir');
      // borg removes the older index once it has written a newer one: a lost race looks again.
      for (let attempt = 1; fd === undefined; attempt++) {
        const n = newestIndex(repoPath);
        if (n === undefined) throw new Error('the repository has no index file');
        try {
          fd = openSync(join(repoPath, `index.${n}`), 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 3) throw err;
        }
      }
      const head = Buffer.alloc(NS_HEADER);
      if (readSync(fd, head, 0, NS_HEADER, 0) !== NS_HEADER) throw new Error('the repository index is truncated');
      return new SegmentReader(repoPath, fd, parseNsIndexHeader(head, fstatSync(fd).size), perDir);
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      log.info({ repo: repoPath, err: (err as Error).message }, 'restore reads go through borg serve: the repository index is not readable');
      return undefined;
    }
  }

  /** The stored object (as `borg serve`'s get returns it), or undefined: ask `borg serve`. */
  read(id: Buffer): StoredObject | undefined {
    if (this.closed) return undefined;
    try {
      const at = this.locate(id);
      const fd = at && this.segment(at.segment);
      return fd === undefined || fd === null ? undefined : readEntry(fd, at!.offset, id, this.scratch);
    } catch {
      return undefined;
    }
  }

  private locate(id: Buffer): ObjectLocation | undefined {
    return nsLookup(id, this.header.buckets, PROBE_BUCKETS, (bucket, n) => {
      const run = Buffer.allocUnsafe(n * NS_BUCKET);
      return readSync(this.indexFd, run, 0, run.length, NS_HEADER + bucket * NS_BUCKET) === run.length ? run : undefined;
    });
  }

  /** A segment file's descriptor, opened once; null (remembered) when the file is gone. */
  private segment(segment: number): number | null {
    let fd = this.segments.get(segment);
    if (fd !== undefined) {
      // Most recently used goes last.
      this.segments.delete(segment);
      this.segments.set(segment, fd);
      return fd;
    }
    try {
      fd = openSync(join(this.repoPath, 'data', String(Math.floor(segment / this.segmentsPerDir)), String(segment)), 'r');
    } catch {
      fd = null;
    }
    this.segments.set(segment, fd);
    if (this.segments.size > MAX_OPEN_SEGMENTS) {
      const [oldest, oldFd] = this.segments.entries().next().value as [number, number | null];
      this.segments.delete(oldest);
      if (oldFd !== null) closeSync(oldFd);
    }
    return fd;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.indexFd);
    for (const fd of this.segments.values()) if (fd !== null) closeSync(fd);
    this.segments.clear();
  }
}

/** The object of the put entry of `id` at `offset`, or undefined when that is not what is there. */
function readEntry(fd: number, offset: number, id: Buffer, first: Buffer): StoredObject | undefined {
  const got = readSync(fd, first, 0, first.length, offset);
  const size = putEntrySize(first.subarray(0, got), id);
  if (size === undefined) return undefined;
  // A copy of its own: the scratch buffer is read into again by the next get.
  if (size <= got) return { object: Buffer.from(first.subarray(PUT_HEADER, size)), owned: false };
  const object = Buffer.allocUnsafeSlow(size - PUT_HEADER);
  first.copy(object, 0, PUT_HEADER, got);
  for (let filled = got - PUT_HEADER; filled < object.length; ) {
    const n = readSync(fd, object, filled, object.length - filled, offset + PUT_HEADER + filled);
    if (n === 0) return undefined;
    filled += n;
  }
  return { object, owned: true };
}
