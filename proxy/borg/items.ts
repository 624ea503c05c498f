// Streaming parser for an archive's items stream (BORG_PROTOCOL.md §5.3, §9.5; borg/cache.py
// `CacheSynchronizer` / cache_sync/unpack.h, which walks the same stream in C). The stream is the
// concatenation of the decompressed items chunks in order; an item may span a chunk boundary, so this is
// an incremental state machine: it never materialises items and keeps only a few hundred bytes of
// unconsumed input (one header, one item key, one chunk id), whatever the size of an item's chunk list.
//
// Every top-level value must be a map with string keys; `chunks` and `chunks_healthy` must be arrays of
// [id(32 bytes), size, csize] (ChunkListEntry), and each id is reported. Everything else is skipped
// without being decoded (large strings are skipped across feeds).
import { MsgpackError } from './errors.js';
import { keyAt } from './item-keys.js';
import { refusedType } from './msgpack.js';

export interface ItemStreamOptions {
  /** Deepest container nesting inside the stream (default 32). */
  readonly maxDepth?: number;
  /** Longest item key (default 255). */
  readonly maxKeyLen?: number;
  /**
   * Report the ids of `chunks_healthy` too (default true). A reference check must see them (a
   * client may name any id there); an index of what exists must not: `borg check --repair` keeps
   * there the ids of chunks it found missing, and borg's own cache sync counts `chunks` only.
   */
  readonly reportHealthy?: boolean;
}

// Value types of a msgpack header, and the roles of the containers on the stack. Plain numbers:
// the parser runs over every byte of every archive's metadata, and allocating a header object per
// value or a frame per chunk entry made it the larger part of an unchanged backup's archive check.
const T_INT = 0;
const T_NIL = 1;
const T_BOOL = 2;
const T_FLOAT = 3;
const T_STR = 4;
const T_ARRAY = 5;
const T_MAP = 6;
const TYPE_NAMES = ['int', 'nil', 'bool', 'float', 'str', 'array', 'map'] as const;

const R_ITEM = 0;
const R_CHUNKS = 1;
const R_ENTRY = 2;
const R_OTHER = 3;
// A `chunks_healthy` list and its entries when their ids are not reported.
const R_CHUNKS_QUIET = 4;
const R_ENTRY_QUIET = 5;

class NeedMore extends Error {}
const NEED_MORE = new NeedMore('need more input');

/** Keys of one item checked for duplicates in a list before a Set takes over. */
const SEEN_LIST_MAX = 32;

/**
 * Incremental items-stream parser: `feed` each decompressed items chunk in order and collect the chunk ids
 * it returns; call `end()` after the last chunk to make sure the stream ended on an item boundary.
 */
export class ItemStreamParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private skip = 0;
  private failed: Error | undefined = undefined;
  private readonly maxDepth: number;
  private readonly maxKeyLen: number;
  private readonly reportHealthy: boolean;
  // The container stack, one slot per depth: role, elements left (maps count keys and values),
  // and for chunk entries the index of the next element.
  private depth = 0;
  private readonly roles: Uint8Array;
  private readonly remaining: Float64Array;
  private readonly index: Uint8Array;
  /**
   * The current item's keys so far (duplicates are refused) and the key whose value comes next.
   * A short list, not a Set: an item has a dozen keys, mostly the very strings of keyCache. An
   * item with more keys than the list holds goes on in a Set (a linear search would be quadratic).
   */
  private readonly seen: string[] = [];
  private nSeen = 0;
  private seenMany: Set<string> | undefined = undefined;
  private key: string | undefined = undefined;
  // The last header read: its count/length/value and its size in bytes.
  private hN = 0;
  private hSize = 0;
  /** Complete top-level items seen so far. */
  items = 0;
  /** Chunk references reported so far (duplicates included). */
  references = 0;

  constructor(opts: ItemStreamOptions = {}) {
    this.maxDepth = opts.maxDepth ?? 32;
    this.maxKeyLen = opts.maxKeyLen ?? 255;
    this.reportHealthy = opts.reportHealthy ?? true;
    this.roles = new Uint8Array(this.maxDepth);
    this.remaining = new Float64Array(this.maxDepth);
    this.index = new Uint8Array(this.maxDepth);
  }

  /** Bytes held back because they end in the middle of a header, key or id. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos;
  }

  /** Feeds the next piece of the stream; returns the chunk ids (lowercase hex) completed by it. */
  feed(chunk: Uint8Array): string[] {
    if (this.failed !== undefined) throw this.failed;
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.buf = this.pos >= this.buf.length ? c : Buffer.concat([this.buf.subarray(this.pos), c]);
    this.pos = 0;
    const ids: string[] = [];
    try {
      this.run(ids);
    } catch (e) {
      if (e !== NEED_MORE) {
        this.failed = e instanceof Error ? e : new Error(String(e));
        throw this.failed;
      }
    }
    // Keep only the unconsumed tail (bounded: at most a header plus a key or an id).
    if (this.pos > 0) {
      this.buf = this.pos >= this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(this.pos));
      this.pos = 0;
    }
    this.references += ids.length;
    return ids;
  }

  /** True while the input so far ends inside an item (the next chunk must continue it). */
  get inItem(): boolean {
    return this.depth > 0 || this.skip > 0 || this.bufferedBytes > 0;
  }

  /** Throws unless the stream ended exactly after a complete item. */
  end(): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.inItem) {
      throw new MsgpackError('items stream ends inside an item', 'truncated');
    }
  }

  /**
   * The parser's whole state between two feeds, as a string: the same state fed the same bytes
   * gives the same ids and the same next state (ItemsCache keys on it).
   */
  state(): string {
    if (this.failed !== undefined) throw this.failed;
    const frames: number[] = [];
    for (let d = 0; d < this.depth; d++) frames.push(this.roles[d]!, this.remaining[d]!, this.index[d]!);
    const inItem = this.depth > 0;
    const seen = !inItem ? [] : this.seenMany ? [...this.seenMany] : this.seen.slice(0, this.nSeen);
    return JSON.stringify([this.buf.subarray(this.pos).toString('latin1'), this.skip, frames, inItem ? (this.key ?? null) : null, seen]);
  }

  /**
   * Goes on as if the feed that led to `state` (taken from a parser like this one) had just
   * happened here: it completed `items` items and `references` chunk references.
   */
  resume(state: string, items: number, references: number): void {
    if (this.failed !== undefined) throw this.failed;
    const [tail, skip, frames, key, seen] = JSON.parse(state) as [string, number, number[], string | null, string[]];
    if (frames.length % 3 !== 0 || frames.length / 3 > this.maxDepth) throw new RangeError('not a state of this parser');
    this.buf = Buffer.from(tail, 'latin1');
    this.pos = 0;
    this.skip = skip;
    this.depth = frames.length / 3;
    for (let d = 0; d < this.depth; d++) {
      this.roles[d] = frames[3 * d]!;
      this.remaining[d] = frames[3 * d + 1]!;
      this.index[d] = frames[3 * d + 2]!;
    }
    this.key = key ?? undefined;
    this.nSeen = 0;
    this.seenMany = undefined;
    for (const k of seen) this.see(k);
    this.items += items;
    this.references += references;
  }

  private push(role: number, isMap: boolean, n: number): void {
    if (this.depth + 1 > this.maxDepth) throw new MsgpackError(`nesting deeper than ${this.maxDepth}`, 'limit-depth');
    const d = this.depth++;
    this.roles[d] = role;
    this.remaining[d] = isMap ? 2 * n : n;
    this.index[d] = 0;
    if (role === R_ITEM) {
      this.nSeen = 0;
      this.seenMany = undefined;
      this.key = undefined;
    }
  }

  private see(key: string): void {
    const dup = () => new MsgpackError(`duplicate item key ${JSON.stringify(key)}`, 'duplicate-key');
    if (this.seenMany) {
      if (this.seenMany.has(key)) throw dup();
      this.seenMany.add(key);
      return;
    }
    for (let i = 0; i < this.nSeen; i++) if (this.seen[i] === key) throw dup();
    if (this.nSeen < SEEN_LIST_MAX) this.seen[this.nSeen++] = key;
    else this.seenMany = new Set([...this.seen, key]);
  }

  /** Reads one msgpack header at `p` without consuming: returns its type, sets hN and hSize. */
  private header(p: number): number {
    const buf = this.buf;
    if (p >= buf.length) throw NEED_MORE;
    const b = buf[p]!;
    this.hSize = 1;
    if (b <= 0x7f) {
      this.hN = b;
      return T_INT;
    }
    if (b >= 0xe0) {
      this.hN = b - 256;
      return T_INT;
    }
    if (b >= 0xa0 && b <= 0xbf) {
      this.hN = b & 0x1f;
      return T_STR;
    }
    if (b >= 0x90 && b <= 0x9f) {
      this.hN = b & 0x0f;
      return T_ARRAY;
    }
    if (b >= 0x80 && b <= 0x8f) {
      this.hN = b & 0x0f;
      return T_MAP;
    }
    return this.sizedHeader(p, b);
  }

  /** The headers whose value or length follows the type byte (and nil, bool, refused types). */
  private sizedHeader(p: number, b: number): number {
    const buf = this.buf;
    const need = (n: number): void => {
      if (p + n > buf.length) throw NEED_MORE;
      this.hSize = n;
    };
    switch (b) {
      case 0xc0:
        this.hN = 0;
        return T_NIL;
      case 0xc2:
      case 0xc3:
        this.hN = b - 0xc2;
        return T_BOOL;
      case 0xca:
        need(5);
        this.hN = 0;
        return T_FLOAT;
      case 0xcb:
        need(9);
        this.hN = 0;
        return T_FLOAT;
      case 0xcc:
      case 0xd0:
        need(2);
        this.hN = b === 0xcc ? buf.readUInt8(p + 1) : buf.readInt8(p + 1);
        return T_INT;
      case 0xcd:
      case 0xd1:
        need(3);
        this.hN = b === 0xcd ? buf.readUInt16BE(p + 1) : buf.readInt16BE(p + 1);
        return T_INT;
      case 0xce:
      case 0xd2:
        need(5);
        this.hN = b === 0xce ? buf.readUInt32BE(p + 1) : buf.readInt32BE(p + 1);
        return T_INT;
      case 0xcf:
      case 0xd3:
        need(9);
        // Only the sign matters to the parser (sizes must not be negative); no BigInt needed.
        this.hN = b === 0xcf ? buf.readUInt32BE(p + 1) * 4294967296 + buf.readUInt32BE(p + 5) : buf.readInt32BE(p + 1) * 4294967296 + buf.readUInt32BE(p + 5);
        return T_INT;
      case 0xd9:
        need(2);
        this.hN = buf.readUInt8(p + 1);
        return T_STR;
      case 0xda:
        need(3);
        this.hN = buf.readUInt16BE(p + 1);
        return T_STR;
      case 0xdb:
        need(5);
        this.hN = buf.readUInt32BE(p + 1);
        return T_STR;
      case 0xdc:
        need(3);
        this.hN = buf.readUInt16BE(p + 1);
        return T_ARRAY;
      case 0xdd:
        need(5);
        this.hN = buf.readUInt32BE(p + 1);
        return T_ARRAY;
      case 0xde:
        need(3);
        this.hN = buf.readUInt16BE(p + 1);
        return T_MAP;
      case 0xdf:
        need(5);
        this.hN = buf.readUInt32BE(p + 1);
        return T_MAP;
      default:
        throw refusedType(b);
    }
  }

  private run(ids: string[]): void {
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length - this.pos);
        this.pos += n;
        this.skip -= n;
        if (this.skip > 0) throw NEED_MORE;
      }
      if (this.depth === 0) {
        if (this.pos >= this.buf.length) return;
        const t = this.header(this.pos);
        if (t !== T_MAP) throw new MsgpackError(`item is a ${TYPE_NAMES[t]}, not a map`, 'item-type');
        this.pos += this.hSize;
        this.push(R_ITEM, true, this.hN);
        continue;
      }
      const d = this.depth - 1;
      if (this.remaining[d] === 0) {
        this.depth--;
        if (this.depth === 0) this.items++;
        continue;
      }
      if (this.roles[d] === R_ITEM && this.remaining[d]! % 2 === 0) {
        // an item key: read it whole (they are short names)
        const t = this.header(this.pos);
        if (t !== T_STR) throw new MsgpackError(`item key is a ${TYPE_NAMES[t]}, not a string`, 'key-type');
        const n = this.hN;
        if (n > this.maxKeyLen) throw new MsgpackError(`item key longer than ${this.maxKeyLen}`, 'limit-str');
        const at = this.pos + this.hSize;
        if (at + n > this.buf.length) throw NEED_MORE;
        const key = keyAt(this.buf, at, n);
        this.see(key);
        this.pos = at + n;
        this.key = key;
        this.remaining[d] = this.remaining[d]! - 1;
        continue;
      }
      this.element(d, ids);
    }
  }

  private element(d: number, ids: string[]): void {
    const t = this.header(this.pos);
    const n = this.hN;
    switch (this.roles[d]) {
      case R_ITEM:
        if (this.key === 'chunks' || this.key === 'chunks_healthy') {
          if (t !== T_ARRAY) throw new MsgpackError(`item ${this.key} is a ${TYPE_NAMES[t]}, not an array`, 'chunks-type');
          this.pos += this.hSize;
          this.remaining[d] = this.remaining[d]! - 1;
          this.push(this.key === 'chunks' || this.reportHealthy ? R_CHUNKS : R_CHUNKS_QUIET, false, n);
          return;
        }
        break;
      case R_CHUNKS:
      case R_CHUNKS_QUIET:
        if (t !== T_ARRAY || n !== 3) throw new MsgpackError('chunk list entry is not [id, size, csize]', 'chunks-type');
        this.pos += this.hSize;
        this.remaining[d] = this.remaining[d]! - 1;
        this.push(this.roles[d] === R_CHUNKS ? R_ENTRY : R_ENTRY_QUIET, false, 3);
        return;
      case R_ENTRY:
      case R_ENTRY_QUIET:
        if (this.index[d] === 0) {
          if (t !== T_STR || n !== 32) throw new MsgpackError('chunk id is not 32 bytes', 'chunks-type');
          const at = this.pos + this.hSize;
          if (at + 32 > this.buf.length) throw NEED_MORE;
          if (this.roles[d] === R_ENTRY) ids.push(this.buf.toString('hex', at, at + 32));
          this.pos = at + 32;
        } else {
          if (t !== T_INT || n < 0) throw new MsgpackError('chunk size is not a non-negative integer', 'chunks-type');
          this.pos += this.hSize;
        }
        this.index[d] = this.index[d]! + 1;
        this.remaining[d] = this.remaining[d]! - 1;
        return;
      case R_OTHER:
        break;
    }
    // generic skip of any other value
    this.pos += this.hSize;
    this.remaining[d] = this.remaining[d]! - 1;
    if (t === T_STR) this.skip = n;
    else if (t === T_ARRAY) this.push(R_OTHER, false, n);
    else if (t === T_MAP) this.push(R_OTHER, true, n);
  }
}
