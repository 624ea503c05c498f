// The repository's own index file, `index.N` (borg 1.2: hashindex.pyx `NSIndex`, _hashindex.c
// `hashindex_lookup`): where each committed object sits in the segment files. The same table as
// the chunks cache (hashindex.ts) with 8-byte values. Pure format; reading the file is
// ../storage/segment-reader.ts's.
//
//   header  "BORG_IDX" num_entries:i32le num_buckets:i32le key_size:i8(32) value_size:i8(8)   (18 bytes)
//   bucket  key[32] segment:u32le offset:u32le                                               (40 bytes)
//   empty   segment 0xffffffff, deleted 0xfffffffe
//   place   start at u32le(key[0:4]) % num_buckets, probe linearly upward, wrap around
import { BorgFormatError } from './errors.js';

export const NS_HEADER = 18;
export const NS_BUCKET = 40;
const MAGIC = Buffer.from('BORG_IDX');
const KEY = 32;
const EMPTY = 0xffffffff;
const DELETED = 0xfffffffe;

export interface NsIndexHeader {
  entries: number;
  buckets: number;
}

/** Where an object's entry starts: its segment file and the byte offset in it. */
export interface ObjectLocation {
  segment: number;
  offset: number;
}

/** Checks an index file's header against its size (a truncated or foreign file is refused). */
export function parseNsIndexHeader(head: Buffer, fileSize: number): NsIndexHeader {
  if (head.length < NS_HEADER || !head.subarray(0, 8).equals(MAGIC)) throw new BorgFormatError('repository index: invalid magic', 'index-magic');
  const entries = head.readInt32LE(8);
  const buckets = head.readInt32LE(12);
  if (head[16] !== KEY || head[17] !== 8) throw new BorgFormatError(`repository index: key/value sizes ${head[16]}/${head[17]}, not 32/8`, 'index-sizes');
  if (buckets <= 0 || entries < 0 || entries > buckets || NS_HEADER + buckets * NS_BUCKET !== fileSize) {
    throw new BorgFormatError(`repository index: ${buckets} buckets do not fit a file of ${fileSize} bytes`, 'index-size');
  }
  return { entries, buckets };
}

/** The bucket a lookup of `id` starts at. */
export function nsStartBucket(id: Buffer, buckets: number): number {
  return id.readUInt32LE(0) % buckets;
}

/**
 * Scans `run`, consecutive buckets read from the table, for `id`: its location, 'absent' at the
 * first empty bucket (hashindex_lookup stops there), or 'more' when the run ended first.
 */
export function nsProbe(run: Buffer, id: Buffer): ObjectLocation | 'absent' | 'more' {
  for (let at = 0; at + NS_BUCKET <= run.length; at += NS_BUCKET) {
    const segment = run.readUInt32LE(at + KEY);
    if (segment === EMPTY) return 'absent';
    if (segment === DELETED) continue;
    if (run.compare(id, 0, KEY, at, at + KEY) === 0) return { segment, offset: run.readUInt32LE(at + KEY + 4) };
  }
  return 'more';
}

/**
 * hashindex_lookup over a table read run by run: `readRun(bucket, n)` gives `n` consecutive
 * buckets from `bucket` (undefined: the table could not be read there). Probes from the start
 * bucket, wrapping around, each bucket at most once.
 */
export function nsLookup(id: Buffer, buckets: number, runBuckets: number, readRun: (bucket: number, n: number) => Buffer | undefined): ObjectLocation | undefined {
  let bucket = nsStartBucket(id, buckets);
  for (let seen = 0; seen < buckets; ) {
    const n = Math.min(runBuckets, buckets - bucket, buckets - seen);
    const run = readRun(bucket, n);
    if (!run) return undefined;
    const r = nsProbe(run, id);
    if (r === 'absent') return undefined;
    if (r !== 'more') return r;
    seen += n;
    bucket = (bucket + n) % buckets;
  }
  return undefined;
}
