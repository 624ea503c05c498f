// Compression envelope (BORG_PROTOCOL.md §4; borg/compress.pyx `Compressor.detect`, `LZ4`, `ZSTD`, `ZLIB`,
// `LZMA`, `ObfuscateSize`). A payload P starts with a 2-byte header (second byte always 0 in 1.2), except
// legacy zlib, detected by content. Detection order is borg's COMPRESSOR_LIST: lz4, zstd, none, zlib, lzma,
// obfuscate. Everything else is refused, and every decoder is bounded so a small object cannot expand into
// gigabytes.
//
// Decoders: liblz4 through koffi (after a JS walk of the block that learns the exact output size),
// @toondepauw/node-zstd, xz-decompress (WebAssembly, streaming so output stops at the bound) and
// Node's zlib: the fastest that install without a compiler and can be bounded; the alternatives
// measured are in docs/performance.md ("Libraries of proxy/borg").
import { crc32, inflateSync } from 'node:zlib';
import { Decoder as ZstdDecoder } from '@toondepauw/node-zstd';
import koffi from 'koffi';
import xzDecompress from 'xz-decompress';
import { DecompressionError } from './errors.js';

/** Borg's compressor names, as `Compressor.detect(...).name` reports them. */
export type CompressionKind = 'none' | 'lz4' | 'zstd' | 'zlib' | 'lzma' | 'obfuscate';

/** borg's LZ4 decompressor gives up beyond 2**27 bytes (compress.pyx `LZ4.decompress`). */
export const DEFAULT_MAX_OUTPUT = 128 * 1024 * 1024;

export interface DecompressOptions {
  /** Largest plaintext accepted (default 128 MiB). */
  readonly maxOutput?: number;
  /**
   * Memory the caller reuses for plaintexts: an lz4 plaintext that fits is decoded into it and
   * `data` is a view of it, valid only until the caller's next use of `into` (no allocation per
   * object on the repository service's hot path).
   */
  readonly into?: Buffer;
  /** How many obfuscate layers may wrap each other (default 4). */
  readonly maxObfuscateDepth?: number;
}

export interface Decompressed {
  readonly data: Buffer;
  /** Outermost compressor. */
  readonly kind: CompressionKind;
  /** e.g. `lz4`, `obfuscate(zstd)` — the same label the fixtures' extract.py records. */
  readonly label: string;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const fail = (msg: string, code: string): never => {
  throw new DecompressionError(msg, code);
};

/** Identifies the compressor of a payload, or throws (borg: ValueError for unknown headers). */
export function detectCompression(p: Uint8Array): CompressionKind {
  if (p.length < 2) return fail(`payload of ${p.length} bytes has no compression header`, 'short');
  const a = p[0] ?? 0;
  const b = p[1] ?? 0;
  if (a === 0x01 && b === 0x00) return 'lz4';
  if (a === 0x03 && b === 0x00) return 'zstd';
  if (a === 0x00 && b === 0x00) return 'none';
  // ZLIB.detect: CMF low nibble 8 (deflate) and (CMF*256 + FLG) % 31 == 0.
  if ((a & 0x0f) === 8 && (a * 256 + b) % 31 === 0) return 'zlib';
  if (a === 0x02 && b === 0x00) return 'lzma';
  if (a === 0x04 && b === 0x00) return 'obfuscate';
  return fail(`unknown compression header ${a.toString(16).padStart(2, '0')}${b.toString(16).padStart(2, '0')}`, 'unknown-header');
}

/** Decompresses a payload P (§4), bounded by `maxOutput`. */
export async function decompress(p: Buffer, opts: DecompressOptions = {}): Promise<Decompressed> {
  const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const depth = opts.maxObfuscateDepth ?? 4;
  const kind = detectCompression(p);
  switch (kind) {
    case 'none':
      if (p.length - 2 > max) fail(`plaintext of ${p.length - 2} bytes exceeds ${max}`, 'too-large');
      return { data: p.subarray(2), kind, label: kind };
    case 'lz4':
      return { data: lz4Decompress(p, 2, max, opts.into), kind, label: kind };
    case 'zstd':
      return { data: zstdDecompress(p, 2, max), kind, label: kind };
    case 'zlib':
      return { data: zlibDecompress(p, max), kind, label: kind };
    case 'lzma':
      return { data: await xzDecompressBounded(p.subarray(2), max), kind, label: kind };
    case 'obfuscate': {
      if (depth <= 0) fail('obfuscate nested too deeply', 'nesting');
      // ObfuscateSize: u32be compressed size, the inner payload (with its own header), zero padding.
      if (p.length < 6) fail('obfuscate payload too short', 'short');
      const n = p.readUInt32BE(2);
      if (6 + n > p.length) fail(`obfuscate inner length ${n} exceeds the payload`, 'obfuscate-length');
      // borg ignores the padding; it always writes zeros, so anything else is refused (safe by default).
      if (!isZero(p, 6 + n)) fail('obfuscate padding is not zero', 'obfuscate-padding');
      const inner = await decompress(p.subarray(6, 6 + n), { maxOutput: max, maxObfuscateDepth: depth - 1, into: opts.into });
      return { data: inner.data, kind, label: `obfuscate(${inner.label})` };
    }
  }
}

function isZero(b: Buffer, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// ------------------------------------------------------------------------------------------------
// LZ4 raw block (LZ4_compress_default output, no frame, no size)

/**
 * Output size of a raw LZ4 block, from its sequence headers, validating the structure on the way
 * (offsets inside the output, no truncation). Throws once the size passes `max`.
 */
export function lz4DecompressedSize(src: Uint8Array, start: number, max: number): number {
  const end = src.length;
  let i = start;
  let out = 0;
  if (i >= end) fail('empty lz4 block', 'lz4-corrupt');
  for (;;) {
    const token = src[i++] ?? 0;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (i >= end) fail('lz4 literal length truncated', 'lz4-corrupt');
        b = src[i++] ?? 0;
        lit += b;
      } while (b === 255);
    }
    i += lit;
    out += lit;
    if (i > end) fail('lz4 literals run past the block', 'lz4-corrupt');
    if (out > max) fail(`lz4 plaintext exceeds ${max} bytes`, 'too-large');
    if (i === end) return out; // the last sequence has literals only
    // LZ4_decompress_safe (what borg calls) requires every other sequence to leave at least 2+1+LASTLITERALS
    // = 8 input bytes after its literals; checked here too, so that the error says why.
    if (end - i < 8) fail('lz4 block violates the end-of-block rule (fewer than 8 bytes after literals)', 'lz4-corrupt');
    const off = (src[i] ?? 0) | ((src[i + 1] ?? 0) << 8);
    i += 2;
    if (off === 0 || off > out) fail('lz4 match offset outside the output', 'lz4-corrupt');
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (i >= end) fail('lz4 match length truncated', 'lz4-corrupt');
        b = src[i++] ?? 0;
        ml += b;
      } while (b === 255);
    }
    out += ml + 4;
    if (out > max) fail(`lz4 plaintext exceeds ${max} bytes`, 'too-large');
    if (i >= end) fail('lz4 block ends with a match', 'lz4-corrupt');
  }
}

interface Lz4Library {
  decompressSafe: (src: Uint8Array, dst: Uint8Array, srcSize: number, dstCapacity: number) => number;
  compressDefault: (src: Uint8Array, dst: Uint8Array, srcSize: number, dstCapacity: number) => number;
  compressBound: (inputSize: number) => number;
}

/**
 * liblz4, loaded with this module: borg's Debian package depends on it, so a server has it, and
 * if it is missing the process fails at start with this message — not later at a client's first
 * lz4 object, where the failure would read like the client's bad data.
 */
const lz4: Lz4Library = (() => {
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load('liblz4.so.1');
  } catch (e) {
    throw new Error(`cannot load liblz4.so.1 (Debian: liblz4-1, which borgbackup depends on): ${message(e)}`);
  }
  return {
    decompressSafe: lib.func('int LZ4_decompress_safe(const uint8_t *src, uint8_t *dst, int srcSize, int dstCapacity)'),
    compressDefault: lib.func('int LZ4_compress_default(const uint8_t *src, uint8_t *dst, int srcSize, int dstCapacity)'),
    compressBound: lib.func('int LZ4_compressBound(int inputSize)'),
  };
})();

function lz4Decompress(p: Buffer, start: number, max: number, into?: Buffer): Buffer {
  const size = lz4DecompressedSize(p, start, max);
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  // An empty destination is passed as a null pointer, which liblz4 accepts for an empty output.
  const n = lz4.decompressSafe(p.subarray(start), out, p.length - start, size);
  if (n !== size) fail(n < 0 ? 'lz4 block is corrupt' : `lz4 produced ${n} bytes, expected ${size}`, 'lz4-corrupt');
  return out;
}

// ------------------------------------------------------------------------------------------------
// zstd (RFC 8878 frame; borg: ZSTD_getFrameContentSize must be known, ZSTD_decompress, rsize == osize)

let zstdDecoder: ZstdDecoder | undefined;

/** Content size of a single zstd frame spanning exactly `src[start:]`; refuses what borg would not decode. */
export function zstdFrameContentSize(src: Uint8Array, start: number, max: number): number {
  const end = src.length;
  let i = start;
  const need = (n: number): void => {
    if (i + n > end) fail('zstd frame truncated', 'zstd-corrupt');
  };
  need(6);
  if (src[i] !== 0x28 || src[i + 1] !== 0xb5 || src[i + 2] !== 0x2f || src[i + 3] !== 0xfd) fail('not a zstd frame', 'zstd-magic');
  const fhd = src[i + 4] ?? 0;
  i += 5;
  const fcsFlag = fhd >>> 6;
  const single = (fhd >>> 5) & 1;
  if (fhd & 0x08) fail('zstd reserved header bit set', 'zstd-corrupt');
  const checksum = (fhd >>> 2) & 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3] ?? 0;
  if (!single) i += 1; // window descriptor
  need(dictIdSize);
  let dictId = 0;
  for (let k = dictIdSize - 1; k >= 0; k--) dictId = dictId * 256 + (src[i + k] ?? 0);
  i += dictIdSize;
  if (dictId !== 0) fail('zstd frames with a dictionary are not supported', 'zstd-dictionary');
  const fcsSize = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag] ?? 0;
  if (fcsSize === 0) fail('zstd get size failed: original size unknown', 'zstd-no-size');
  need(fcsSize);
  let size = 0;
  for (let k = fcsSize - 1; k >= 0; k--) size = size * 256 + (src[i + k] ?? 0);
  if (fcsSize === 2) size += 256;
  i += fcsSize;
  if (size > max) fail(`zstd content size ${size} exceeds ${max}`, 'too-large');
  // Walk the blocks so the frame must end exactly at the end of the payload (one frame, no trailer).
  for (;;) {
    need(3);
    const hdr = (src[i] ?? 0) | ((src[i + 1] ?? 0) << 8) | ((src[i + 2] ?? 0) << 16);
    i += 3;
    const type = (hdr >>> 1) & 3;
    const bsize = hdr >>> 3;
    if (type === 3) fail('zstd reserved block type', 'zstd-corrupt');
    if (bsize > 128 * 1024) fail('zstd block larger than 128 KiB', 'zstd-corrupt');
    i += type === 1 ? 1 : bsize;
    if (i > end) fail('zstd block runs past the payload', 'zstd-corrupt');
    if (hdr & 1) break;
  }
  if (checksum) i += 4;
  if (i !== end) fail('data after the zstd frame', 'zstd-trailing');
  return size;
}

function zstdDecompress(p: Buffer, start: number, max: number): Buffer {
  const size = zstdFrameContentSize(p, start, max);
  zstdDecoder ??= new ZstdDecoder();
  let out: Buffer;
  try {
    out = zstdDecoder.decodeSync(p.subarray(start));
  } catch (e) {
    return fail(`zstd decompress failed: ${message(e)}`, 'zstd-corrupt');
  }
  if (out.length !== size) fail('zstd decompress failed: size mismatch', 'zstd-corrupt');
  return out;
}

// ------------------------------------------------------------------------------------------------
// zlib (legacy, header-less in borg's sense: the whole RFC 1950 stream)

function zlibDecompress(p: Buffer, max: number): Buffer {
  try {
    return inflateSync(p, { maxOutputLength: max });
  } catch (e) {
    if (e instanceof RangeError) return fail(`zlib plaintext exceeds ${max} bytes`, 'too-large');
    return fail(`zlib decompress failed: ${message(e)}`, 'zlib-corrupt');
  }
}

// ------------------------------------------------------------------------------------------------
// xz (Python lzma.compress: FORMAT_XZ, check=CHECK_NONE, one stream)

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

function varint(src: Uint8Array, pos: { i: number }, end: number): number {
  let v = 0;
  for (let shift = 0; shift < 63; shift += 7) {
    if (pos.i >= end) fail('xz index truncated', 'xz-corrupt');
    const b = src[pos.i++] ?? 0;
    v += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return v;
  }
  return fail('xz varint too long', 'xz-corrupt');
}

/**
 * Total uncompressed size declared by a single-stream .xz container with CHECK_NONE, after checking that
 * header, blocks, index and footer account for every byte (no padding, no second stream).
 */
export function xzDeclaredSize(x: Uint8Array, max: number): number {
  const b = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  if (b.length < 32 || !b.subarray(0, 6).equals(XZ_MAGIC)) fail('not an xz stream', 'xz-magic');
  if (crc32(b.subarray(6, 8)) !== b.readUInt32LE(8)) fail('xz stream header CRC mismatch', 'xz-corrupt');
  if (b[6] !== 0 || b[7] !== 0) fail('xz check type is not CHECK_NONE (borg writes check=NONE)', 'xz-check');
  const f = b.length - 12;
  if (b[f + 10] !== 0x59 || b[f + 11] !== 0x5a) fail('xz stream footer missing (trailing data?)', 'xz-trailing');
  if (crc32(b.subarray(f + 4, f + 10)) !== b.readUInt32LE(f)) fail('xz stream footer CRC mismatch', 'xz-corrupt');
  if (b[f + 8] !== 0 || b[f + 9] !== 0) fail('xz footer flags differ from the header', 'xz-corrupt');
  const indexSize = (b.readUInt32LE(f + 4) + 1) * 4;
  const indexStart = f - indexSize;
  if (indexStart < 12 || b[indexStart] !== 0) fail('xz index not found', 'xz-corrupt');
  if (crc32(b.subarray(indexStart, f - 4)) !== b.readUInt32LE(f - 4)) fail('xz index CRC mismatch', 'xz-corrupt');
  const pos = { i: indexStart + 1 };
  const records = varint(b, pos, f - 4);
  let blocks = 0;
  let total = 0;
  for (let r = 0; r < records; r++) {
    const unpadded = varint(b, pos, f - 4);
    blocks += Math.ceil(unpadded / 4) * 4;
    total += varint(b, pos, f - 4);
    if (total > max) fail(`xz plaintext exceeds ${max} bytes`, 'too-large');
  }
  if (12 + blocks !== indexStart) fail('xz blocks do not fill the stream (more than one stream?)', 'xz-corrupt');
  return total;
}

async function xzDecompressBounded(x: Buffer, max: number): Promise<Buffer> {
  const declared = xzDeclaredSize(x, max);
  const input = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      c.close();
    },
  });
  const parts: Buffer[] = [];
  let n = 0;
  try {
    const reader = new xzDecompress.XzReadableStream(input).getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.byteLength;
      // The decoder checks the index against what it produced only at the end; stop a lying stream early.
      if (n > declared) {
        await reader.cancel();
        fail('xz stream produces more than its index declares', 'xz-corrupt');
      }
      parts.push(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
    }
  } catch (e) {
    if (e instanceof DecompressionError) throw e;
    fail(`lzma decompress failed: ${message(e)}`, 'xz-corrupt');
  }
  if (n !== declared) fail(`xz produced ${n} bytes, index declares ${declared}`, 'xz-corrupt');
  return Buffer.concat(parts, n);
}

// ------------------------------------------------------------------------------------------------
// Compression (only what the proxy may need to produce: none, and lz4 with borg's fallback to none)

/** `00 00 ‖ data` — borg's CNONE. */
export function compressNone(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + data.length);
  out[0] = 0;
  out[1] = 0;
  out.set(data, 2);
  return out;
}

/** `01 00 ‖ raw LZ4 block`, falling back to `none` when lz4 does not make the data smaller (borg's LZ4.compress). */
export function compressLz4(data: Buffer): Buffer {
  const { compressBound, compressDefault } = lz4;
  const out = Buffer.allocUnsafe(2 + compressBound(data.length));
  const n = compressDefault(data, out.subarray(2), data.length, out.length - 2);
  if (n <= 0 || n >= data.length) return compressNone(data);
  out[0] = 1;
  out[1] = 0;
  return out.subarray(0, 2 + n);
}
