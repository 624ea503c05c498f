// The client's files cache (BORG_PROTOCOL.md §6.3; borg/cache.py `LocalCache._read_files` / `commit`,
// `FileCacheEntry`, helpers/msgpack.py `int_to_bigint` / `bigint_to_int`).
//
//   stream of msgpack [path_hash(32), [age, inode, size, cmtime_ns, [chunk_id(32), ...]]]
//
// path_hash = id_hash(absolute path bytes), so entries stay valid across job keys sharing id_key. cmtime_ns
// is an int, or, above 63 bits, little-endian signed bytes (int_to_bigint).
import { BorgFormatError } from './errors.js';
import { LIMITS, Unpacker, asArray, asBytes, asInt, packb, type Packable, type UnpackLimits, type Value } from './msgpack.js';

export interface FilesCacheEntry {
  readonly pathHash: Buffer;
  /** Runs since the file was last seen; entries at BORG_FILES_CACHE_TTL (default 20) are dropped by borg. */
  readonly age: number;
  readonly inode: bigint;
  readonly size: bigint;
  readonly cmtimeNs: bigint;
  readonly chunkIds: readonly Buffer[];
}

function bigintToBytes(v: bigint): Buffer {
  // int_to_bigint: value.to_bytes((bit_length + 9) // 8, 'little', signed=True)
  const abs = v < 0n ? -v : v;
  const bitLength = abs === 0n ? 0 : abs.toString(2).length;
  const n = Math.floor((bitLength + 9) / 8);
  const out = Buffer.alloc(n);
  let x = BigInt.asUintN(n * 8, v);
  for (let i = 0; i < n; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function bytesToBigint(b: Buffer): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i] ?? 0);
  return BigInt.asIntN(b.length * 8, x);
}

function asWideInt(v: Value | undefined, what: string): bigint {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'bigint') return v;
  if (Buffer.isBuffer(v) && v.length > 0 && v.length <= 16) return bytesToBigint(v); // bigint_to_int
  throw new BorgFormatError(`files cache ${what} is not an integer`, 'files-cache');
}

function packWide(v: bigint): Packable {
  return v >= -(2n ** 63n) && v < 2n ** 63n ? v : bigintToBytes(v);
}

/** Packs one entry exactly like `msgpack.pack((path_hash, entry), fd)`. */
export function packFilesCacheEntry(e: FilesCacheEntry): Buffer {
  if (e.pathHash.length !== 32) throw new RangeError('path hash must be 32 bytes');
  return packb([e.pathHash, [e.age, packWide(e.inode), packWide(e.size), packWide(e.cmtimeNs), e.chunkIds.map((c) => c)]]);
}

/** The whole files cache file for `entries`. */
export function writeFilesCache(entries: Iterable<FilesCacheEntry>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) parts.push(packFilesCacheEntry(e));
  return Buffer.concat(parts);
}

function toEntry(v: Value): FilesCacheEntry {
  const [pathHash, item] = asArray(v, 'files cache record', { len: 2 });
  const fields = asArray(item, 'files cache entry', { len: 5 });
  return {
    pathHash: asBytes(pathHash, 'path hash', { len: 32 }),
    age: asInt(fields[0], 'age', { min: 0 }),
    inode: asWideInt(fields[1], 'inode'),
    size: asWideInt(fields[2], 'size'),
    cmtimeNs: asWideInt(fields[3], 'cmtime'),
    chunkIds: asArray(fields[4], 'chunk ids').map((c) => asBytes(c, 'chunk id', { len: 32 })),
  };
}

/**
 * Streams files cache entries from chunks of the file, validating each record. Memory is bounded by
 * `limits` (default: the items preset, so one huge file's chunk list still fits but nothing unbounded does).
 */
export function* readFilesCache(chunks: Iterable<Uint8Array>, limits: UnpackLimits = LIMITS.items): Generator<FilesCacheEntry> {
  const u = new Unpacker(limits);
  for (const c of chunks) {
    u.feed(c);
    for (const v of u) yield toEntry(v);
  }
  if (u.bufferedBytes > 0) throw new BorgFormatError('files cache ends inside a record', 'files-cache');
}
