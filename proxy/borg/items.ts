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

export interface ItemStreamOptions {
  /** Deepest container nesting inside the stream (default 32). */
  readonly maxDepth?: number;
  /** Longest item key (default 255). */
  readonly maxKeyLen?: number;
}

type Role = 'item' | 'chunks' | 'entry' | 'other';

interface Frame {
  readonly role: Role;
  /** Elements left to read; for maps this counts keys and values. */
  remaining: number;
  readonly isMap: boolean;
  /** Item maps: the key just read (decides the role of its value). */
  key?: string;
  /** Item maps: keys seen, to refuse duplicates. */
  seen?: Set<string>;
  /** Chunk entries: index of the next element. */
  index: number;
}

class NeedMore extends Error {}
const NEED_MORE = new NeedMore('need more input');

interface Header {
  /** 'int' | 'nil' | 'bool' | 'float' | 'str' | 'array' | 'map' */
  readonly type: string;
  /** str length / container count / integer value */
  readonly n: number;
  readonly size: number;
}

/** Reads one msgpack header at `p` without consuming; throws NEED_MORE when incomplete. */
function header(buf: Buffer, p: number): Header {
  if (p >= buf.length) throw NEED_MORE;
  const b = buf[p] ?? 0;
  const need = (n: number): void => {
    if (p + n > buf.length) throw NEED_MORE;
  };
  if (b <= 0x7f) return { type: 'int', n: b, size: 1 };
  if (b >= 0xe0) return { type: 'int', n: b - 256, size: 1 };
  if (b >= 0xa0 && b <= 0xbf) return { type: 'str', n: b & 0x1f, size: 1 };
  if (b >= 0x90 && b <= 0x9f) return { type: 'array', n: b & 0x0f, size: 1 };
  if (b >= 0x80 && b <= 0x8f) return { type: 'map', n: b & 0x0f, size: 1 };
  switch (b) {
    case 0xc0:
      return { type: 'nil', n: 0, size: 1 };
    case 0xc2:
    case 0xc3:
      return { type: 'bool', n: b - 0xc2, size: 1 };
    case 0xca:
      need(5);
      return { type: 'float', n: 0, size: 5 };
    case 0xcb:
      need(9);
      return { type: 'float', n: 0, size: 9 };
    case 0xcc:
    case 0xd0:
      need(2);
      return { type: 'int', n: b === 0xcc ? buf.readUInt8(p + 1) : buf.readInt8(p + 1), size: 2 };
    case 0xcd:
    case 0xd1:
      need(3);
      return { type: 'int', n: b === 0xcd ? buf.readUInt16BE(p + 1) : buf.readInt16BE(p + 1), size: 3 };
    case 0xce:
    case 0xd2:
      need(5);
      return { type: 'int', n: b === 0xce ? buf.readUInt32BE(p + 1) : buf.readInt32BE(p + 1), size: 5 };
    case 0xcf:
    case 0xd3:
      need(9);
      return { type: 'int', n: Number(b === 0xcf ? buf.readBigUInt64BE(p + 1) : buf.readBigInt64BE(p + 1)), size: 9 };
    case 0xd9:
      need(2);
      return { type: 'str', n: buf.readUInt8(p + 1), size: 2 };
    case 0xda:
      need(3);
      return { type: 'str', n: buf.readUInt16BE(p + 1), size: 3 };
    case 0xdb:
      need(5);
      return { type: 'str', n: buf.readUInt32BE(p + 1), size: 5 };
    case 0xdc:
      need(3);
      return { type: 'array', n: buf.readUInt16BE(p + 1), size: 3 };
    case 0xdd:
      need(5);
      return { type: 'array', n: buf.readUInt32BE(p + 1), size: 5 };
    case 0xde:
      need(3);
      return { type: 'map', n: buf.readUInt16BE(p + 1), size: 3 };
    case 0xdf:
      need(5);
      return { type: 'map', n: buf.readUInt32BE(p + 1), size: 5 };
    case 0xc4:
    case 0xc5:
    case 0xc6:
      throw new MsgpackError('bin type is not allowed (max_bin_len=0)', 'bin-type');
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      throw new MsgpackError('ext type is not allowed (max_ext_len=0)', 'ext-type');
    default:
      throw new MsgpackError(`reserved type byte 0x${b.toString(16)}`, 'reserved-type');
  }
}

const CHUNK_LIST_KEYS = new Set(['chunks', 'chunks_healthy']);

/**
 * Incremental items-stream parser: `feed` each decompressed items chunk in order and collect the chunk ids
 * it returns; call `end()` after the last chunk to make sure the stream ended on an item boundary.
 */
export class ItemStreamParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private skip = 0;
  private readonly stack: Frame[] = [];
  private failed: Error | undefined = undefined;
  private readonly maxDepth: number;
  private readonly maxKeyLen: number;
  /** Complete top-level items seen so far. */
  items = 0;
  /** Chunk references reported so far (duplicates included). */
  references = 0;

  constructor(opts: ItemStreamOptions = {}) {
    this.maxDepth = opts.maxDepth ?? 32;
    this.maxKeyLen = opts.maxKeyLen ?? 255;
  }

  /** Bytes held back because they end in the middle of a header, key or id. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos;
  }

  /** Feeds the next piece of the stream; returns the chunk ids (copies) completed by it. */
  feed(chunk: Uint8Array): Buffer[] {
    if (this.failed !== undefined) throw this.failed;
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.buf = this.pos >= this.buf.length ? c : Buffer.concat([this.buf.subarray(this.pos), c]);
    this.pos = 0;
    const ids: Buffer[] = [];
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
    return this.stack.length > 0 || this.skip > 0 || this.bufferedBytes > 0;
  }

  /** Throws unless the stream ended exactly after a complete item. */
  end(): void {
    if (this.failed !== undefined) throw this.failed;
    if (this.inItem) {
      throw new MsgpackError('items stream ends inside an item', 'truncated');
    }
  }

  private push(role: Role, isMap: boolean, n: number): void {
    if (this.stack.length + 1 > this.maxDepth) throw new MsgpackError(`nesting deeper than ${this.maxDepth}`, 'limit-depth');
    const frame: Frame = { role, isMap, remaining: isMap ? 2 * n : n, index: 0 };
    if (role === 'item') frame.seen = new Set();
    this.stack.push(frame);
  }

  private run(ids: Buffer[]): void {
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length - this.pos);
        this.pos += n;
        this.skip -= n;
        if (this.skip > 0) throw NEED_MORE;
      }
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) {
        if (this.pos >= this.buf.length) return;
        const h = header(this.buf, this.pos);
        if (h.type !== 'map') throw new MsgpackError(`item is a ${h.type}, not a map`, 'item-type');
        this.pos += h.size;
        this.push('item', true, h.n);
        continue;
      }
      if (top.remaining === 0) {
        this.stack.pop();
        if (this.stack.length === 0) this.items++;
        continue;
      }
      if (top.role === 'item' && top.remaining % 2 === 0) {
        // an item key: read it whole (they are short names)
        const h = header(this.buf, this.pos);
        if (h.type !== 'str') throw new MsgpackError(`item key is a ${h.type}, not a string`, 'key-type');
        if (h.n > this.maxKeyLen) throw new MsgpackError(`item key longer than ${this.maxKeyLen}`, 'limit-str');
        if (this.pos + h.size + h.n > this.buf.length) throw NEED_MORE;
        const key = this.buf.toString('latin1', this.pos + h.size, this.pos + h.size + h.n);
        if (top.seen?.has(key)) throw new MsgpackError(`duplicate item key ${JSON.stringify(key)}`, 'duplicate-key');
        top.seen?.add(key);
        this.pos += h.size + h.n;
        top.key = key;
        top.remaining--;
        continue;
      }
      this.element(top, ids);
    }
  }

  private element(top: Frame, ids: Buffer[]): void {
    const h = header(this.buf, this.pos);
    switch (top.role) {
      case 'item':
        if (top.key !== undefined && CHUNK_LIST_KEYS.has(top.key)) {
          if (h.type !== 'array') throw new MsgpackError(`item ${top.key} is a ${h.type}, not an array`, 'chunks-type');
          this.pos += h.size;
          top.remaining--;
          this.push('chunks', false, h.n);
          return;
        }
        break;
      case 'chunks':
        if (h.type !== 'array' || h.n !== 3) throw new MsgpackError('chunk list entry is not [id, size, csize]', 'chunks-type');
        this.pos += h.size;
        top.remaining--;
        this.push('entry', false, 3);
        return;
      case 'entry':
        if (top.index === 0) {
          if (h.type !== 'str' || h.n !== 32) throw new MsgpackError('chunk id is not 32 bytes', 'chunks-type');
          if (this.pos + h.size + 32 > this.buf.length) throw NEED_MORE;
          ids.push(Buffer.from(this.buf.subarray(this.pos + h.size, this.pos + h.size + 32)));
          this.pos += h.size + 32;
        } else {
          if (h.type !== 'int' || h.n < 0) throw new MsgpackError('chunk size is not a non-negative integer', 'chunks-type');
          this.pos += h.size;
        }
        top.index++;
        top.remaining--;
        return;
      case 'other':
        break;
    }
    // generic skip of any other value
    this.pos += h.size;
    top.remaining--;
    if (h.type === 'str') this.skip = h.n;
    else if (h.type === 'array') this.push('other', false, h.n);
    else if (h.type === 'map') this.push('other', true, h.n);
  }
}
