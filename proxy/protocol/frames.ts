// Framing between the forced command and the repository service (one Unix-socket connection per
// session), also used by the AuthorizedKeysCommand and the lease clients. A frame is
// `u32be length ‖ u32be header length ‖ JSON header ‖ payload bytes`:
// the header carries the message, the payload carries object data (up to Borg's 20 MiB object
// limit) without any re-encoding. Both ends treat the other as untrusted: lengths are bounded
// before anything is buffered, and headers are validated with zod by the receiver.
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';

export const MAX_HEADER = 64 * 1024;
/** Borg's MAX_OBJECT_SIZE plus room for the header: no legitimate frame is larger. */
export const MAX_FRAME = 20 * 1024 * 1024 + MAX_HEADER + 8;

export interface Frame {
  header: unknown;
  payload: Buffer;
  /**
   * The payload's memory belongs to this frame alone (large frames get their own allocation),
   * so it may be transferred to a worker thread without a copy.
   */
  owned: boolean;
}

/** A frame whose payload is left in the chunks it arrived in (FrameDecoder.pushSliced). */
export interface SlicedFrame {
  header: unknown;
  parts: Buffer[];
  /** The payload's bytes, all parts together. */
  length: number;
}

/** Frames from this size on are assembled in an allocation of their own. */
const OWN_ALLOCATION = 256 * 1024;

export class FrameError extends Error {
  override name = 'FrameError';
}

export function encodeFrame(header: unknown, payload?: Uint8Array): Buffer[] {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  if (h.length > MAX_HEADER) throw new FrameError('frame header too large');
  const plen = payload?.length ?? 0;
  const pre = Buffer.allocUnsafe(8);
  pre.writeUInt32BE(4 + h.length + plen, 0);
  pre.writeUInt32BE(h.length, 4);
  return payload && plen ? [pre, h, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)] : [pre, h];
}

/** A whole frame in one buffer, for a connection's single answer (`socket.end(frameBytes(…))`). */
export function frameBytes(header: unknown, payload?: Uint8Array): Buffer {
  return Buffer.concat(encodeFrame(header, payload));
}

/** Incremental decoder: feed chunks, get complete frames. Throws FrameError on bad input. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame = MAX_FRAME) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (let len = this.wholeFrame(); len !== undefined; len = this.wholeFrame()) {
      const owned = 4 + len >= OWN_ALLOCATION;
      const buf = this.take(4 + len, owned);
      const hlen = buf.readUInt32BE(4);
      const header = parseHeader(len, hlen, () => buf.toString('utf8', 8, 8 + hlen));
      frames.push({ header, payload: buf.subarray(8 + hlen), owned });
    }
    return frames;
  }

  /**
   * As push, but each payload stays in the memory it arrived in: a list of slices of the socket's
   * chunks, for a reader that only writes it on (the proxy; a copy per object was 42% of its CPU
   * in a restore). Only the small header is ever copied.
   */
  pushSliced(chunk: Buffer): SlicedFrame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: SlicedFrame[] = [];
    for (let len = this.wholeFrame(); len !== undefined; len = this.wholeFrame()) {
      const hlen = Buffer.concat(this.takeSlices(8)).readUInt32BE(4);
      const header = parseHeader(len, hlen, () => Buffer.concat(this.takeSlices(hlen)).toString('utf8'));
      const length = len - 4 - hlen;
      frames.push({ header, parts: this.takeSlices(length), length });
    }
    return frames;
  }

  /** The next frame's length once all of it is buffered (undefined before); out of bounds, an error. */
  private wholeFrame(): number | undefined {
    if (this.buffered < 4) return undefined;
    const len = this.peekU32();
    if (len < 4 || len > this.maxFrame) throw new FrameError(`frame length ${len} out of bounds`);
    return this.buffered < 4 + len ? undefined : len;
  }

  /** The next `n` bytes as slices of the buffered chunks (no copy). */
  private takeSlices(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    let used = 0;
    while (left > 0) {
      const c = this.chunks[used]!;
      if (c.length <= left) {
        out.push(c);
        used++;
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[used] = c.subarray(left);
        left = 0;
      }
    }
    this.chunks.splice(0, used);
    this.buffered -= n;
    return out;
  }

  private peekU32(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    // Across chunks, without joining them (joining all that is buffered, per chunk, is quadratic).
    let v = 0;
    let got = 0;
    for (const c of this.chunks) {
      for (let i = 0; i < c.length && got < 4; i++, got++) v = v * 256 + c[i]!;
      if (got === 4) break;
    }
    return v;
  }

  private take(n: number, own: boolean): Buffer {
    const first = this.chunks[0]!;
    if (own) {
      // One copy into memory no other frame shares (the socket's chunks are shared).
      const out = Buffer.allocUnsafeSlow(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
      this.buffered -= n;
      return out;
    }
    if (first.length >= n) {
      // Zero-copy when a whole frame sits in one chunk (the common case for large puts).
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const all = Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return out;
  }
}

/** A frame's JSON header, read by `text` once its length `hlen` is known to fit the frame's `len`. */
function parseHeader(len: number, hlen: number, text: () => string): unknown {
  if (hlen > MAX_HEADER || hlen > len - 4) throw new FrameError('bad frame header length');
  try {
    return JSON.parse(text());
  } catch {
    throw new FrameError('frame header is not JSON');
  }
}

/** Writes a frame; false when the socket asks for back-pressure. */
export function writeFrame(sock: Socket, header: unknown, payload?: Uint8Array): boolean {
  return writeCoalesced(sock, encodeFrame(header, payload));
}

/**
 * Writes parts together with everything else written to `stream` in this tick: one writev when
 * the tick ends instead of a write syscall per part. A backup sends tens of thousands of small
 * messages (a put's header, its reply), and on a virtual machine each syscall costs ~0.1 ms:
 * uncoalesced, those writes were a tenth of the repository service's main thread. Returns false
 * when the stream asks for back-pressure.
 */
export function writeCoalesced(stream: Writable, parts: readonly Uint8Array[]): boolean {
  if (!stream.writableCorked) {
    stream.cork();
    process.nextTick(() => stream.uncork());
  }
  let ok = true;
  for (const p of parts) ok = stream.write(p);
  return ok;
}
