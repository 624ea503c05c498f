// Borg's ChunkIndex file format (BORG_PROTOCOL.md §6.3; borg/_hashindex.c `hashindex_read` / `write` /
// `hashindex_set` / `hashindex_lookup` / `hashindex_compact`, hashindex.pyx `ChunkIndex.add` / `merge`).
//
//   header  "BORG_IDX" num_entries:i32le num_buckets:i32le key_size:i8(32) value_size:i8(12)   (18 bytes)
//   bucket  key[32] refcount:u32le size:u32le csize:u32le                                     (44 bytes)
//   empty   refcount 0xffffffff (borg writes a zero key), deleted 0xfffffffe, max refcount 0xfffffbff (sticky)
//   place   start at u32le(key[0:4]) % num_buckets, probe linearly upward, wrap around
//
// The in-memory table IS the file's bucket array (one flat Buffer, 44 bytes per bucket), so writing is a copy
// and millions of entries cost 44 bytes each plus the 25% empty buckets the load limit requires — no JS objects
// per entry. Table sizes are the hash_sizes list compiled into borg 1.2.4's hashindex .so (read from the binary).
import { endianness } from 'node:os';
import { BorgFormatError } from './errors.js';

export const HASH_SIZES: readonly number[] = [
  1031, 2053, 4099, 8209, 16411, 32771, 65537, 131101, 262147, 445649, 757607, 1287917, 2189459, 3065243, 4291319,
  6007867, 8410991, 11775359, 16485527, 23079703, 27695653, 33234787, 39881729, 47858071, 57429683, 68915617,
  82698751, 99238507, 119086189, 144378011, 157223263, 173476439, 190253911, 209915011, 230493629, 253169431,
  278728861, 306647623, 337318939, 370742809, 408229973, 449387209, 493428073, 543105119, 596976533, 657794869,
  722676499, 795815791, 874066969, 962279771, 1057701643, 1164002657, 1280003147, 1407800297, 1548442699,
  1703765389, 1873768367, 2062383853,
];
const MAGIC = Buffer.from('BORG_IDX');
const HEADER = 18;
const KEY = 32;
const BUCKET = 44;
const EMPTY = 0xffffffff;
const DELETED = 0xfffffffe;
/** Largest valid refcount; reaching it makes the count sticky (_MAX_VALUE). */
export const MAX_REFCOUNT = 0xfffffbff;
const MIN_LOAD = 0.25; // HASH_MIN_LOAD
const MAX_LOAD = 0.75; // HASH_MAX_LOAD
const MAX_EFF_LOAD = 0.93; // HASH_MAX_EFF_LOAD: fewer empty buckets than 7% forces a rebuild

export interface ChunkIndexEntry {
  readonly refcount: number;
  /** Plaintext length; must be right (a later chunk with the same id but another size is an error in borg). */
  readonly size: number;
  /** Stored object length (statistics only). */
  readonly csize: number;
}

/** Smallest table size >= `capacity` (fit_size). */
function fitSize(capacity: number): number {
  for (const s of HASH_SIZES) if (s >= capacity) return s;
  throw new RangeError('hash index capacity too large');
}

function growSize(current: number): number {
  for (const s of HASH_SIZES) if (s > current) return s;
  throw new RangeError('hash index too large');
}

function shrinkSize(current: number): number {
  let prev = HASH_SIZES[0] ?? 1031;
  for (const s of HASH_SIZES) {
    if (s >= current) return prev;
    prev = s;
  }
  return prev;
}

function checkKey(key: Uint8Array): Buffer {
  if (key.length !== KEY) throw new RangeError('chunk index keys are 32 bytes');
  return Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be a uint32`);
  return v;
}

// The table is addressed as 32-bit words (11 per bucket: 8 key words, refcount, size, csize), which is the
// file's little-endian layout only on a little-endian host.
if (endianness() !== 'LE') throw new Error('proxy/borg/hashindex.ts assumes a little-endian host');
const W = BUCKET / 4; // words per bucket
const RC = 8; // word index of the refcount

/** A ChunkIndex (id -> refcount, size, csize) backed by one flat bucket table. */
export class ChunkIndex {
  private table: Buffer;
  private words: Uint32Array;
  private buckets: number;
  private entries = 0;
  private empty: number;
  /** Where the last failed lookup would insert (first tombstone passed, else the empty bucket reached). */
  private insertAt = -1;

  /** `usable`: entries to hold without resizing (like ChunkIndex(usable=...)). */
  constructor(usable = 0) {
    this.buckets = fitSize(Math.ceil(usable / MAX_LOAD));
    [this.table, this.words] = ChunkIndex.emptyTable(this.buckets);
    this.empty = this.buckets;
  }

  private static emptyTable(buckets: number): [Buffer, Uint32Array] {
    const ab = new ArrayBuffer(buckets * BUCKET);
    const w = new Uint32Array(ab);
    for (let o = RC; o < w.length; o += W) w[o] = EMPTY;
    return [Buffer.from(ab), w];
  }

  get size(): number {
    return this.entries;
  }

  get numBuckets(): number {
    return this.buckets;
  }

  private upperLimit(): number {
    return Math.trunc(this.buckets * MAX_LOAD);
  }

  private minEmpty(): number {
    return Math.trunc(this.buckets * (1 - MAX_EFF_LOAD));
  }

  /**
   * hashindex_lookup: bucket index of `key` or -1. With `move` (used by set/delete), a found entry that sits
   * behind a tombstone is moved into the first tombstone passed, as borg does on every lookup, so files
   * written here match borg's byte for byte, tombstones included. Plain reads (get/has) never move anything,
   * so they are safe while iterating.
   */
  private find(key: Buffer, move = false): number {
    const w = this.words;
    const k0 = key.readUInt32LE(0);
    const k1 = key.readUInt32LE(4);
    const start = k0 % this.buckets;
    let i = start;
    let deleted = -1;
    for (;;) {
      const o = i * W;
      const rc = w[o + RC];
      if (rc === EMPTY) break;
      if (rc === DELETED) {
        if (deleted < 0) deleted = i;
      } else if (w[o] === k0 && w[o + 1] === k1 && this.table.compare(key, 8, KEY, o * 4 + 8, o * 4 + KEY) === 0) {
        if (move && deleted >= 0) {
          w.copyWithin(deleted * W, o, o + W);
          w[o + RC] = DELETED;
          return deleted;
        }
        return i;
      }
      if (++i === this.buckets) i = 0;
      if (i === start) break;
    }
    this.insertAt = deleted >= 0 ? deleted : i;
    return -1;
  }

  get(key: Uint8Array): ChunkIndexEntry | undefined {
    const i = this.find(checkKey(key));
    if (i < 0) return undefined;
    const o = i * W + RC;
    return { refcount: this.words[o] ?? 0, size: this.words[o + 1] ?? 0, csize: this.words[o + 2] ?? 0 };
  }

  has(key: Uint8Array): boolean {
    return this.find(checkKey(key)) >= 0;
  }

  /**
   * Inserts or replaces an entry (hashindex_set). As in borg, the table grows *before* an insert once
   * num_entries > upper_limit, so a table may briefly hold upper_limit + 1 entries.
   */
  set(key: Uint8Array, e: ChunkIndexEntry): void {
    const k = checkKey(key);
    if (checkU32(e.refcount, 'refcount') > MAX_REFCOUNT) throw new RangeError('refcount above the maximum 0xfffffbff');
    checkU32(e.size, 'size');
    checkU32(e.csize, 'csize');
    let i = this.find(k, true);
    if (i < 0) {
      if (this.entries > this.upperLimit()) {
        this.resize(growSize(this.buckets));
        this.find(k);
      }
      i = this.insertAt;
      if (this.words[i * W + RC] === EMPTY) {
        this.empty--;
        if (this.empty < this.minEmpty()) {
          // too many tombstones: same-size rebuild, then the key's first empty bucket
          this.resize(this.buckets);
          this.find(k);
          i = this.insertAt;
          this.empty--;
        }
      }
      k.copy(this.table, i * BUCKET);
      this.entries++;
    }
    const o = i * W + RC;
    this.words[o] = e.refcount;
    this.words[o + 1] = e.size;
    this.words[o + 2] = e.csize;
  }

  /** ChunkIndex.add: refcount += refs (saturating at the maximum), size and csize replaced. */
  add(key: Uint8Array, refs: number, size: number, csize: number): void {
    const old = this.get(key);
    const refcount = old === undefined ? refs : Math.min(old.refcount + refs, MAX_REFCOUNT);
    this.set(key, { refcount, size, csize });
  }

  /** hashindex_delete: leaves a tombstone; shrinks the table below 25% load (not below the first size). */
  delete(key: Uint8Array): boolean {
    const i = this.find(checkKey(key), true);
    if (i < 0) return false;
    this.words[i * W + RC] = DELETED;
    this.entries--;
    const lowerLimit = this.buckets <= (HASH_SIZES[0] ?? 0) ? 0 : Math.trunc(this.buckets * MIN_LOAD);
    if (this.entries < lowerLimit) this.resize(shrinkSize(this.buckets));
    return true;
  }

  /** ChunkIndex.merge: add every entry of `other` (refcounts summed, sizes taken from `other`). */
  merge(other: ChunkIndex): void {
    for (const [k, e] of other) this.add(k, e.refcount, e.size, e.csize);
  }

  /** Entries in bucket order; keys are views valid until the next set/add/delete (get/has are fine). */
  *[Symbol.iterator](): Generator<[Buffer, ChunkIndexEntry]> {
    const w = this.words;
    for (let o = 0; o < w.length; o += W) {
      const rc = w[o + RC] ?? EMPTY;
      if (rc === EMPTY || rc === DELETED) continue;
      yield [this.table.subarray(o * 4, o * 4 + KEY), { refcount: rc, size: w[o + RC + 1] ?? 0, csize: w[o + RC + 2] ?? 0 }];
    }
  }

  /** hashindex_resize: a fresh table of `buckets`, entries re-inserted in bucket order (tombstones dropped). */
  private resize(buckets: number): void {
    const old = this.words;
    const [table, w] = ChunkIndex.emptyTable(buckets);
    let used = 0;
    for (let o = 0; o < old.length; o += W) {
      const rc = old[o + RC];
      if (rc === EMPTY || rc === DELETED) continue;
      let i = (old[o] ?? 0) % buckets;
      while (w[i * W + RC] !== EMPTY) if (++i === buckets) i = 0;
      w.set(old.subarray(o, o + W), i * W);
      used++;
    }
    this.table = table;
    this.words = w;
    this.buckets = buckets;
    this.empty = buckets - used;
  }

  private static header(entries: number, buckets: number): Buffer {
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h, 0);
    h.writeInt32LE(entries, 8);
    h.writeInt32LE(buckets, 12);
    h.writeInt8(KEY, 16);
    h.writeInt8(12, 17);
    return h;
  }

  /** The `chunks` file (hashindex_write): header and the whole table, tombstones included. */
  serialize(): Buffer {
    return Buffer.concat([ChunkIndex.header(this.entries, this.buckets), this.table]);
  }

  /** The compact per-archive format (chunks.archive.d/<id>.compact): num_buckets == num_entries, no empties. */
  serializeCompact(): Buffer {
    const out = Buffer.allocUnsafe(HEADER + this.entries * BUCKET);
    ChunkIndex.header(this.entries, this.entries).copy(out, 0);
    let p = HEADER;
    const w = this.words;
    for (let o = 0; o < w.length; o += W) {
      const rc = w[o + RC];
      if (rc === EMPTY || rc === DELETED) continue;
      this.table.copy(out, p, o * 4, o * 4 + BUCKET);
      p += BUCKET;
    }
    return out;
  }

  /**
   * Reads a hashindex file. Header, length, every used bucket's refcount and the entry count are checked (borg
   * trusts num_entries; we recount), duplicates are refused, and the table is rebuilt, so a file with a broken
   * probe layout still yields every entry. `permitCompact` accepts the compact per-archive format.
   */
  static parse(buf: Buffer, opts: { permitCompact?: boolean } = {}): ChunkIndex {
    if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) throw new BorgFormatError('not a hashindex (magic)', 'hashindex-magic');
    const entries = buf.readInt32LE(8);
    const buckets = buf.readInt32LE(12);
    if (buf.readInt8(16) !== KEY || buf.readInt8(17) !== 12) throw new BorgFormatError('hashindex key/value size is not 32/12', 'hashindex-header');
    const emptyCompact = buckets === 0 && entries === 0 && opts.permitCompact === true;
    if (entries < 0 || (buckets <= 0 && !emptyCompact) || entries > buckets) throw new BorgFormatError('hashindex entry/bucket counts are invalid', 'hashindex-header');
    if (buf.length !== HEADER + buckets * BUCKET) throw new BorgFormatError('hashindex file length does not match num_buckets', 'hashindex-length');
    if (buckets === entries && !opts.permitCompact && entries > 0) throw new BorgFormatError('compact hashindex not permitted here', 'hashindex-compact');
    const idx = new ChunkIndex(entries);
    let seen = 0;
    for (let off = HEADER; off < buf.length; off += BUCKET) {
      const rc = buf.readUInt32LE(off + KEY);
      if (rc === EMPTY || rc === DELETED) continue;
      if (rc > MAX_REFCOUNT) throw new BorgFormatError(`invalid reference count 0x${rc.toString(16)}`, 'hashindex-value');
      const key = buf.subarray(off, off + KEY);
      if (idx.has(key)) throw new BorgFormatError(`duplicate key ${key.toString('hex')}`, 'hashindex-duplicate');
      idx.set(key, { refcount: rc, size: buf.readUInt32LE(off + KEY + 4), csize: buf.readUInt32LE(off + KEY + 8) });
      seen++;
    }
    if (seen !== entries) throw new BorgFormatError(`hashindex says ${entries} entries but holds ${seen}`, 'hashindex-count');
    return idx;
  }
}
