// Borg's msgpack dialect (BORG_PROTOCOL.md §1.2; borg/helpers/msgpack.py `packb`, `Unpacker`,
// `get_limited_unpacker`). Packing follows msgpack-python with use_bin_type=False: every byte string and
// every text string goes into the raw/str family (fixstr, str16, str32 — never str8, bin or ext). Unpacking
// mirrors raw=True: str-family values come back as bytes, never UTF-8 decoded, because object data travels in
// str16/str32. bin and ext are refused (borg sets max_bin_len=0 and max_ext_len=0 on both ends).
//
// Representation chosen here (lossless):
// * str family  -> Buffer (a zero-copy subarray of the fed buffer from `copyBelow` bytes on).
// * map         -> Map<string, Value> whose keys are the key bytes decoded as latin1 ("binary strings"),
//                  so any byte string round-trips; insertion order is wire order. Keys must be str-family
//                  (borg never uses other key types) and duplicates are refused.
// * integers    -> number when |v| <= 2^53-1, bigint beyond (uint64/int64 values).
// * floats      -> MsgFloat (so 2.0 re-encodes as a float, not as the integer 2).
// * array       -> Value[] (borg unpacks tuples and lists alike).
import { MsgpackError } from './errors.js';

/** A float64 value; decoded float32/float64 come back as this, and it always encodes as float64. */
export class MsgFloat {
  constructor(readonly value: number) {}
}

/** A decoded msgpack value. Map keys are latin1 "binary strings" (one char per key byte). */
export type Value = null | boolean | number | bigint | MsgFloat | Buffer | Value[] | ValueMap;
export type ValueMap = Map<string, Value>;

/**
 * What `packb` accepts. JS strings are packed as UTF-8 in the str family; map keys (Map keys and plain
 * object keys alike) are binary strings, i.e. every char must be <= 0xff and becomes one byte.
 */
export type Packable =
  | null
  | boolean
  | number
  | bigint
  | MsgFloat
  | string
  | Uint8Array
  | readonly Packable[]
  | ReadonlyMap<string, Packable>
  | PackableObject;
export interface PackableObject {
  readonly [key: string]: Packable;
}

/** Limits applied while unpacking; each is checked as soon as a header is read. */
export interface UnpackLimits {
  /** Longest str-family value in bytes. */
  readonly maxStrLen: number;
  /** Most elements in one array. */
  readonly maxArrayLen: number;
  /** Most key/value pairs in one map. */
  readonly maxMapLen: number;
  /** Most bytes buffered but not yet consumed by a streaming Unpacker. */
  readonly maxBufferSize: number;
  /** Deepest container nesting (a top-level array or map is depth 1). */
  readonly maxDepth: number;
  /** Str values shorter than this are copied out of the fed buffer, longer ones are zero-copy views. */
  readonly copyBelow?: number;
}

const MiB = 1024 * 1024;
/** MAX_OBJECT_SIZE = MAX_DATA_SIZE + 41 = 20 MiB (borg/constants.py). */
export const MAX_OBJECT_SIZE = 20 * MiB;
/** MAX_DATA_SIZE (borg/constants.py): the largest object `borg serve` stores. */
export const MAX_DATA_SIZE = 20971479;
const BUFFER_60MIB = 3 * MAX_OBJECT_SIZE; // 3 * max(BUFSIZE, MAX_OBJECT_SIZE)

/**
 * Presets matching borg's `get_limited_unpacker(kind)`, plus `items` for item streams / other trusted-shape
 * data where borg uses an unlimited unpacker. maxDepth is ours: borg relies on msgpack-c's 1024-deep stack;
 * legitimate messages nest at most 4 (server/client), 3 (manifest), 2 (key) deep.
 */
export const LIMITS = {
  server: { maxStrLen: MAX_OBJECT_SIZE, maxArrayLen: 100, maxMapLen: 100, maxBufferSize: BUFFER_60MIB, maxDepth: 16 },
  client: { maxStrLen: MAX_OBJECT_SIZE, maxArrayLen: 100000, maxMapLen: 100, maxBufferSize: BUFFER_60MIB, maxDepth: 16 },
  manifest: { maxStrLen: 255, maxArrayLen: 100, maxMapLen: 400000, maxBufferSize: BUFFER_60MIB, maxDepth: 8 },
  key: { maxStrLen: 4000, maxArrayLen: 0, maxMapLen: 10, maxBufferSize: BUFFER_60MIB, maxDepth: 4 },
  items: { maxStrLen: MAX_OBJECT_SIZE, maxArrayLen: 1_000_000, maxMapLen: 100_000, maxBufferSize: BUFFER_60MIB, maxDepth: 32 },
} as const satisfies Record<string, UnpackLimits>;

// ------------------------------------------------------------------------------------------------
// Packing

const ZERO_COPY_MIN = 64 * 1024;
const utf8 = new TextEncoder();

class Writer {
  private readonly parts: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  private size = 0;

  constructor(initial: number) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flush();
    this.cur = Buffer.allocUnsafe(Math.max(n, Math.min(this.cur.length * 2, ZERO_COPY_MIN)));
  }

  private flush(): void {
    if (this.pos > 0) this.parts.push(this.cur.subarray(0, this.pos));
    this.cur = this.cur.subarray(this.pos);
    this.pos = 0;
  }

  u8(b: number): void {
    this.ensure(1);
    this.cur[this.pos++] = b;
    this.size += 1;
  }

  u8u8(a: number, b: number): void {
    this.ensure(2);
    this.cur[this.pos++] = a;
    this.cur[this.pos++] = b;
    this.size += 2;
  }

  u8u16(a: number, b: number): void {
    this.ensure(3);
    this.cur[this.pos] = a;
    this.cur.writeUInt16BE(b, this.pos + 1);
    this.pos += 3;
    this.size += 3;
  }

  u8u32(a: number, b: number): void {
    this.ensure(5);
    this.cur[this.pos] = a;
    this.cur.writeUInt32BE(b, this.pos + 1);
    this.pos += 5;
    this.size += 5;
  }

  u8u64(a: number, b: bigint, signed: boolean): void {
    this.ensure(9);
    this.cur[this.pos] = a;
    if (signed) this.cur.writeBigInt64BE(b, this.pos + 1);
    else this.cur.writeBigUInt64BE(b, this.pos + 1);
    this.pos += 9;
    this.size += 9;
  }

  f64(v: number): void {
    this.ensure(9);
    this.cur[this.pos] = 0xcb;
    this.cur.writeDoubleBE(v, this.pos + 1);
    this.pos += 9;
    this.size += 9;
  }

  bytes(b: Uint8Array): void {
    if (b.length >= ZERO_COPY_MIN) {
      this.flush();
      this.parts.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    } else {
      this.ensure(b.length);
      this.cur.set(b, this.pos);
      this.pos += b.length;
    }
    this.size += b.length;
  }

  finish(): Buffer[] {
    this.flush();
    return this.parts;
  }

  get length(): number {
    return this.size;
  }
}

function packInt(w: Writer, v: number): void {
  if (v >= 0) {
    if (v <= 0x7f) w.u8(v);
    else if (v <= 0xff) w.u8u8(0xcc, v);
    else if (v <= 0xffff) w.u8u16(0xcd, v);
    else if (v <= 0xffffffff) w.u8u32(0xce, v);
    else w.u8u64(0xcf, BigInt(v), false);
  } else if (v >= -32) w.u8(v & 0xff);
  else if (v >= -128) w.u8u8(0xd0, v & 0xff);
  else if (v >= -32768) w.u8u16(0xd1, v & 0xffff);
  else if (v >= -0x80000000) w.u8u32(0xd2, v >>> 0);
  else w.u8u64(0xd3, BigInt(v), true);
}

function packBigInt(w: Writer, v: bigint): void {
  if (v >= -(2n ** 53n) && v <= 2n ** 53n) packInt(w, Number(v));
  else if (v > 0n && v < 2n ** 64n) w.u8u64(0xcf, v, false);
  else if (v < 0n && v >= -(2n ** 63n)) w.u8u64(0xd3, v, true);
  else throw new MsgpackError(`integer ${v} does not fit in 64 bits`, 'pack-range');
}

function packStrHeader(w: Writer, n: number): void {
  // msgpack-python with use_bin_type=False: fixstr, then str16 (0xda) — never str8 (0xd9) — then str32.
  if (n < 32) w.u8(0xa0 | n);
  else if (n < 0x10000) w.u8u16(0xda, n);
  else if (n <= 0xffffffff) w.u8u32(0xdb, n);
  else throw new MsgpackError(`string of ${n} bytes is too long for msgpack`, 'pack-range');
}

/** The header a byte string of `n` bytes packs with (what packb writes before the bytes themselves). */
export function strHeader(n: number): Buffer {
  const w = new Writer(5);
  packStrHeader(w, n);
  return Buffer.concat(w.finish());
}

function packKey(w: Writer, k: string): void {
  const b = Buffer.from(k, 'latin1');
  if (b.length !== k.length || b.toString('latin1') !== k) {
    throw new MsgpackError(`map key ${JSON.stringify(k)} is not a binary (latin1) string`, 'pack-key');
  }
  packStrHeader(w, b.length);
  w.bytes(b);
}

function containerHeader(w: Writer, n: number, fix: number, h16: number, h32: number): void {
  if (n < 16) w.u8(fix | n);
  else if (n < 0x10000) w.u8u16(h16, n);
  else w.u8u32(h32, n);
}

function pack(w: Writer, v: Packable, depth: number): void {
  if (depth > 512) throw new MsgpackError('value nests too deeply to pack', 'pack-depth');
  if (v === null) w.u8(0xc0);
  else if (v === false) w.u8(0xc2);
  else if (v === true) w.u8(0xc3);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) packInt(w, v);
    else if (Number.isInteger(v)) packBigInt(w, BigInt(v));
    else w.f64(v);
  } else if (typeof v === 'bigint') packBigInt(w, v);
  else if (typeof v === 'string') {
    const b = utf8.encode(v);
    packStrHeader(w, b.length);
    w.bytes(b);
  } else if (v instanceof Uint8Array) {
    packStrHeader(w, v.length);
    w.bytes(v);
  } else if (v instanceof MsgFloat) w.f64(v.value);
  else if (Array.isArray(v)) {
    const a: readonly Packable[] = v;
    containerHeader(w, a.length, 0x90, 0xdc, 0xdd);
    for (const x of a) pack(w, x, depth + 1);
  } else if (v instanceof Map) {
    const m: ReadonlyMap<string, Packable> = v;
    containerHeader(w, m.size, 0x80, 0xde, 0xdf);
    for (const [k, x] of m) {
      packKey(w, k);
      pack(w, x, depth + 1);
    }
  } else {
    const o = v as PackableObject; // the remaining member of the Packable union: a plain object
    const keys = Object.keys(o);
    containerHeader(w, keys.length, 0x80, 0xde, 0xdf);
    for (const k of keys) {
      // JS orders array-index-like keys ("1", "42") first, which would silently reorder a map.
      if (/^(0|[1-9]\d*)$/.test(k)) throw new MsgpackError(`plain-object key ${k} would be reordered; use a Map`, 'pack-key');
      packKey(w, k);
      pack(w, o[k] ?? null, depth + 1);
    }
  }
}

/**
 * Packs `v` the way borg's `msgpack.packb` does. Returns parts: byte strings of 64 KiB or more are NOT
 * copied but referenced, so a 2 MiB object can be written to a socket without a copy.
 */
export function packParts(v: Packable): Buffer[] {
  const w = new Writer(256);
  pack(w, v, 0);
  return w.finish();
}

/** Packs `v` into one Buffer (see packParts). */
export function packb(v: Packable): Buffer {
  const parts = packParts(v);
  return parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts);
}

/** Compares binary-string keys by their bytes (what Python's sorted() does for bytes keys). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // latin1 strings: UTF-16 code unit order == byte order
}

/**
 * Builds a map with keys sorted by bytes, like borg's StableDict (helpers/datastruct.py), which every
 * msgpack'd borg metadata dict (manifest, archive, key, TAM) goes through.
 */
export function sortedMap<T extends Packable>(entries: ReadonlyMap<string, T> | Readonly<Record<string, T>>): Map<string, T> {
  // `entries` is our own typed input, so narrowing it with `as` is not a trust decision about wire data.
  const list: [string, T][] =
    entries instanceof Map ? [...(entries as ReadonlyMap<string, T>)] : Object.entries(entries as Readonly<Record<string, T>>);
  list.sort((x, y) => compareKeys(x[0], y[0]));
  return new Map(list);
}

// ------------------------------------------------------------------------------------------------
// Unpacking

class OutOfData extends Error {}
const OUT_OF_DATA = new OutOfData('incomplete msgpack value');
const EMPTY = Buffer.alloc(0);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function intFromBig(v: bigint): number | bigint {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

/** Decoding core shared by Unpacker and unpackb; works on one contiguous buffer. */
class Decoder {
  buf: Buffer = EMPTY;
  pos = 0;
  /** Absolute index the decoder needed to read when it ran out of data. */
  wanted = 0;
  private readonly copyBelow: number;

  constructor(readonly limits: UnpackLimits) {
    this.copyBelow = limits.copyBelow ?? 128;
  }

  private short(upTo: number): never {
    this.wanted = upTo;
    throw OUT_OF_DATA;
  }

  private have(n: number): void {
    if (this.pos + n > this.buf.length) this.short(this.pos + n);
  }

  private str(n: number): Buffer {
    if (n > this.limits.maxStrLen) {
      throw new MsgpackError(`string of ${n} bytes exceeds max_str_len(${this.limits.maxStrLen})`, 'limit-str');
    }
    this.have(n);
    const start = this.pos;
    this.pos += n;
    const view = this.buf.subarray(start, start + n);
    return n < this.copyBelow ? Buffer.from(view) : view;
  }

  private lenAfter(headerSize: number): number {
    this.have(headerSize);
    const p = this.pos;
    this.pos += headerSize;
    if (headerSize === 1) return this.buf[p] ?? 0;
    if (headerSize === 2) return this.buf.readUInt16BE(p);
    return this.buf.readUInt32BE(p);
  }

  private array(n: number, depth: number): Value[] {
    if (n > this.limits.maxArrayLen) {
      throw new MsgpackError(`array of ${n} exceeds max_array_len(${this.limits.maxArrayLen})`, 'limit-array');
    }
    if (depth + 1 > this.limits.maxDepth) throw new MsgpackError(`nesting deeper than ${this.limits.maxDepth}`, 'limit-depth');
    // Each element takes at least one byte: refuse to allocate for a count the buffer cannot hold yet.
    if (n > this.limits.maxBufferSize) this.short(this.pos + n);
    const out = new Array<Value>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  private map(n: number, depth: number): ValueMap {
    if (n > this.limits.maxMapLen) {
      throw new MsgpackError(`map of ${n} exceeds max_map_len(${this.limits.maxMapLen})`, 'limit-map');
    }
    if (depth + 1 > this.limits.maxDepth) throw new MsgpackError(`nesting deeper than ${this.limits.maxDepth}`, 'limit-depth');
    const out: ValueMap = new Map();
    for (let i = 0; i < n; i++) {
      const k = this.key();
      const v = this.value(depth + 1);
      if (out.has(k)) throw new MsgpackError(`duplicate map key ${JSON.stringify(k)}`, 'duplicate-key');
      out.set(k, v);
    }
    return out;
  }

  private key(): string {
    this.have(1);
    const b = this.buf[this.pos] ?? 0;
    let n: number;
    if ((b & 0xe0) === 0xa0) {
      this.pos += 1;
      n = b & 0x1f;
    } else if (b === 0xd9 || b === 0xda || b === 0xdb) {
      this.pos += 1;
      n = this.lenAfter(b === 0xd9 ? 1 : b === 0xda ? 2 : 4);
    } else if (b >= 0xc4 && b <= 0xc6) {
      throw new MsgpackError('bin type is not allowed (max_bin_len=0)', 'bin-type');
    } else {
      throw new MsgpackError(`map key of type 0x${b.toString(16)} is not a string`, 'key-type');
    }
    if (n > this.limits.maxStrLen) {
      throw new MsgpackError(`string of ${n} bytes exceeds max_str_len(${this.limits.maxStrLen})`, 'limit-str');
    }
    this.have(n);
    const k = this.buf.toString('latin1', this.pos, this.pos + n);
    this.pos += n;
    return k;
  }

  value(depth: number): Value {
    this.have(1);
    const buf = this.buf;
    const b = buf[this.pos] ?? 0;
    this.pos += 1;
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 256;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    let p: number;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca:
        this.have(4);
        p = this.pos;
        this.pos += 4;
        return new MsgFloat(buf.readFloatBE(p));
      case 0xcb:
        this.have(8);
        p = this.pos;
        this.pos += 8;
        return new MsgFloat(buf.readDoubleBE(p));
      case 0xcc:
        return this.lenAfter(1);
      case 0xcd:
        return this.lenAfter(2);
      case 0xce:
        return this.lenAfter(4);
      case 0xcf:
        this.have(8);
        p = this.pos;
        this.pos += 8;
        return intFromBig(buf.readBigUInt64BE(p));
      case 0xd0:
        this.have(1);
        return buf.readInt8(this.pos++);
      case 0xd1:
        this.have(2);
        p = this.pos;
        this.pos += 2;
        return buf.readInt16BE(p);
      case 0xd2:
        this.have(4);
        p = this.pos;
        this.pos += 4;
        return buf.readInt32BE(p);
      case 0xd3:
        this.have(8);
        p = this.pos;
        this.pos += 8;
        return intFromBig(buf.readBigInt64BE(p));
      case 0xd9:
        return this.str(this.lenAfter(1));
      case 0xda:
        return this.str(this.lenAfter(2));
      case 0xdb:
        return this.str(this.lenAfter(4));
      case 0xdc:
        return this.array(this.lenAfter(2), depth);
      case 0xdd:
        return this.array(this.lenAfter(4), depth);
      case 0xde:
        return this.map(this.lenAfter(2), depth);
      case 0xdf:
        return this.map(this.lenAfter(4), depth);
      default:
        throw refusedType(b);
    }
  }
}

/**
 * Streaming decoder: feed Buffer chunks, pull complete top-level values. Limits are enforced as soon as a
 * header is read (a str32 header claiming 100 MB fails before any of it is buffered) and on the number of
 * buffered bytes. After a format error the unpacker stays failed.
 */
export class Unpacker {
  private readonly dec: Decoder;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes (from dec.pos) that must be buffered before decoding is worth retrying. */
  private need = 0;
  private failed: Error | undefined = undefined;

  constructor(readonly limits: UnpackLimits) {
    this.dec = new Decoder(limits);
  }

  /** Bytes received but not yet returned as values. */
  get bufferedBytes(): number {
    return this.dec.buf.length - this.dec.pos + this.pendingLen;
  }

  feed(chunk: Uint8Array): void {
    if (this.failed !== undefined) throw this.failed;
    if (chunk.length === 0) return;
    if (this.bufferedBytes + chunk.length > this.limits.maxBufferSize) {
      this.failed = new MsgpackError(`more than max_buffer_size(${this.limits.maxBufferSize}) bytes buffered`, 'limit-buffer');
      throw this.failed;
    }
    this.pending.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingLen += chunk.length;
  }

  private merge(): void {
    if (this.pending.length === 0) return;
    const d = this.dec;
    const rest = d.buf.subarray(d.pos);
    if (rest.length === 0 && this.pending.length === 1 && this.pending[0]) d.buf = this.pending[0];
    else d.buf = Buffer.concat([rest, ...this.pending]);
    d.pos = 0;
    this.pending = [];
    this.pendingLen = 0;
  }

  /** The next complete top-level value, or undefined if more bytes are needed. */
  next(): Value | undefined {
    if (this.failed !== undefined) throw this.failed;
    if (this.bufferedBytes === 0 || this.bufferedBytes < this.need) return undefined;
    this.merge();
    const d = this.dec;
    const start = d.pos;
    try {
      const v = d.value(0);
      this.need = 0;
      return v;
    } catch (e) {
      if (e === OUT_OF_DATA) {
        d.pos = start;
        this.need = d.wanted - start;
        if (this.need > this.limits.maxBufferSize) {
          this.failed = new MsgpackError(`value needs more than max_buffer_size(${this.limits.maxBufferSize}) bytes`, 'limit-buffer');
          throw this.failed;
        }
        return undefined;
      }
      this.failed = e instanceof Error ? e : new Error(String(e));
      throw this.failed;
    }
  }

  *[Symbol.iterator](): Generator<Value, void, void> {
    for (;;) {
      const v = this.next();
      if (v === undefined) return;
      yield v;
    }
  }
}

/**
 * The error for a type byte no other branch of a decoder took: bin and ext, which borg's
 * unpacker refuses (max_bin_len=0, max_ext_len=0), or a reserved byte. Shared by the decoders here
 * and the item-stream parser (items.ts).
 */
export function refusedType(b: number): MsgpackError {
  if (b >= 0xc4 && b <= 0xc6) return new MsgpackError('bin type is not allowed (max_bin_len=0)', 'bin-type');
  if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) return new MsgpackError('ext type is not allowed (max_ext_len=0)', 'ext-type');
  return new MsgpackError(`reserved type byte 0x${b.toString(16)}`, 'reserved-type');
}

/** Decodes exactly one value from `buf` (trailing bytes are an error). */
export function unpackb(buf: Uint8Array, limits: UnpackLimits): Value {
  const d = new Decoder(limits);
  d.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let v: Value;
  try {
    v = d.value(0);
  } catch (e) {
    if (e === OUT_OF_DATA) throw new MsgpackError('truncated msgpack value', 'truncated');
    throw e;
  }
  if (d.pos !== d.buf.length) throw new MsgpackError(`${d.buf.length - d.pos} trailing bytes after msgpack value`, 'trailing');
  return v;
}

// ------------------------------------------------------------------------------------------------
// Typed access. All of these throw BorgFormatError-family errors naming the field, never TypeError.

function describe(v: Value | undefined): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'nil';
  if (Buffer.isBuffer(v)) return `bytes(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v instanceof Map) return `map(${v.size})`;
  if (v instanceof MsgFloat) return 'float';
  return typeof v;
}

function bad(what: string, expected: string, v: Value | undefined): never {
  throw new MsgpackError(`${what}: expected ${expected}, got ${describe(v)}`, v === undefined ? 'missing-key' : 'wrong-type');
}

/** Binary-string form of a key given as bytes (for building/reading maps keyed by arbitrary bytes). */
export function keyOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Bytes of a binary-string key. */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export function asBytes(v: Value | undefined, what: string, opts: { len?: number; maxLen?: number } = {}): Buffer {
  if (!Buffer.isBuffer(v)) bad(what, 'bytes', v);
  if (opts.len !== undefined && v.length !== opts.len) {
    throw new MsgpackError(`${what}: expected ${opts.len} bytes, got ${v.length}`, 'wrong-length');
  }
  if (opts.maxLen !== undefined && v.length > opts.maxLen) {
    throw new MsgpackError(`${what}: longer than ${opts.maxLen} bytes`, 'wrong-length');
  }
  return v;
}

/** A safe integer (|v| <= 2^53-1); bigint values are refused. */
export function asInt(v: Value | undefined, what: string, range: { min?: number; max?: number } = {}): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(what, 'integer', v);
  if ((range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)) {
    throw new MsgpackError(`${what}: ${v} outside [${range.min ?? '-inf'}, ${range.max ?? 'inf'}]`, 'out-of-range');
  }
  return v;
}

/** Any integer, including 64-bit values decoded as bigint. */
export function asBigInt(v: Value | undefined, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return bad(what, 'integer', v);
}

export function asBool(v: Value | undefined, what: string): boolean {
  if (typeof v !== 'boolean') bad(what, 'bool', v);
  return v;
}

export function asNumber(v: Value | undefined, what: string): number {
  if (typeof v === 'number') return v;
  if (v instanceof MsgFloat) return v.value;
  return bad(what, 'number', v);
}

export function asMap(v: Value | undefined, what: string): ValueMap {
  if (!(v instanceof Map)) bad(what, 'map', v);
  return v;
}

export function asArray(v: Value | undefined, what: string, opts: { len?: number; maxLen?: number } = {}): Value[] {
  if (!Array.isArray(v)) bad(what, 'array', v);
  if (opts.len !== undefined && v.length !== opts.len) {
    throw new MsgpackError(`${what}: expected ${opts.len} elements, got ${v.length}`, 'wrong-length');
  }
  if (opts.maxLen !== undefined && v.length > opts.maxLen) {
    throw new MsgpackError(`${what}: more than ${opts.maxLen} elements`, 'wrong-length');
  }
  return v;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes that must be valid UTF-8 text (borg decodes e.g. method names and exception args). */
export function asText(v: Value | undefined, what: string, maxLen = 65536): string {
  const b = asBytes(v, what, { maxLen });
  try {
    return strictUtf8.decode(b);
  } catch {
    throw new MsgpackError(`${what}: not valid UTF-8`, 'utf8');
  }
}

export const getBytes = (m: ValueMap, k: string, opts?: { len?: number; maxLen?: number }): Buffer => asBytes(m.get(k), k, opts);
export const getInt = (m: ValueMap, k: string, range?: { min?: number; max?: number }): number => asInt(m.get(k), k, range);
export const getBigInt = (m: ValueMap, k: string): bigint => asBigInt(m.get(k), k);
export const getBool = (m: ValueMap, k: string): boolean => asBool(m.get(k), k);
export const getMap = (m: ValueMap, k: string): ValueMap => asMap(m.get(k), k);
export const getArray = (m: ValueMap, k: string, opts?: { len?: number; maxLen?: number }): Value[] => asArray(m.get(k), k, opts);
export const getText = (m: ValueMap, k: string, maxLen?: number): string => asText(m.get(k), k, maxLen);

/** Refuses keys outside `allowed` (safe by default for messages whose key set is fixed). */
export function assertKeys(m: ValueMap, allowed: readonly string[], what: string): void {
  for (const k of m.keys()) {
    if (!allowed.includes(k)) throw new MsgpackError(`${what}: unexpected key ${JSON.stringify(k)}`, 'unexpected-key');
  }
}
