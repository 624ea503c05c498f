// Repository segment files (BORG_PROTOCOL.md §3.3; borg/repository.py `LoggedIO.iter_objects` / `_read`).
// Used by tests and diagnostics (e.g. checking that no AES-CTR nonce was used twice), and by a restore's
// reads (putEntrySize; ../storage/segment-reader.ts); everything else talks to `borg serve`. No I/O here.
//
//   file  := "BORG_SEG" entry*
//   entry := crc32:u32le size:u32le tag:u8 [id:32 data]     (PUT 0 / DELETE 1 carry id; COMMIT 2 is 9 bytes)
//   crc32 covers size ‖ tag ‖ id ‖ data; size counts the whole entry.
import { crc32 } from 'node:zlib';
import { BorgFormatError } from './errors.js';
import { MAX_OBJECT_SIZE } from './msgpack.js';

export const SEGMENT_MAGIC = Buffer.from('BORG_SEG');
const HEADER = 9;
/** crc32, size, tag and the object id in front of a put entry's object. */
export const PUT_HEADER = 41;
/** LoggedIO: tags above MAX_TAG_ID (15) are invalid. */
const TAGS = { 0: 'put', 1: 'delete', 2: 'commit' } as const;

export interface SegmentEntry {
  readonly segment: number;
  readonly offset: number;
  readonly tag: 'put' | 'delete' | 'commit';
  /** Object id (put/delete). */
  readonly id?: Buffer;
  /** The stored object (put). */
  readonly data?: Buffer;
}

/** Iterates one segment file's entries, checking magic, sizes and every CRC. */
export function* iterSegment(buf: Buffer, segment: number): Generator<SegmentEntry> {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    throw new BorgFormatError(`segment ${segment}: invalid magic`, 'segment-magic');
  }
  let pos = 8;
  while (pos < buf.length) {
    if (pos + HEADER > buf.length) throw new BorgFormatError(`segment ${segment}@${pos}: truncated header`, 'segment-truncated');
    const crc = buf.readUInt32LE(pos);
    const size = buf.readUInt32LE(pos + 4);
    const tagByte = buf[pos + 8] ?? 255;
    if (size > MAX_OBJECT_SIZE || size < HEADER || pos + size > buf.length) {
      throw new BorgFormatError(`segment ${segment}@${pos}: invalid entry size ${size}`, 'segment-size');
    }
    if ((crc32(buf.subarray(pos + 4, pos + size)) >>> 0) !== crc) {
      throw new BorgFormatError(`segment ${segment}@${pos}: entry checksum mismatch`, 'segment-crc');
    }
    const tag = tagByte === 0 || tagByte === 1 || tagByte === 2 ? TAGS[tagByte] : undefined;
    if (tag === undefined) throw new BorgFormatError(`segment ${segment}@${pos}: unknown tag ${tagByte}`, 'segment-tag');
    if (tag === 'commit') {
      if (size !== HEADER) throw new BorgFormatError(`segment ${segment}@${pos}: commit entry of ${size} bytes`, 'segment-size');
      yield { segment, offset: pos, tag };
    } else {
      if (size < PUT_HEADER) throw new BorgFormatError(`segment ${segment}@${pos}: ${tag} entry without id`, 'segment-size');
      const id = buf.subarray(pos + 9, pos + PUT_HEADER);
      yield tag === 'put' ? { segment, offset: pos, tag, id, data: buf.subarray(pos + PUT_HEADER, pos + size) } : { segment, offset: pos, tag, id };
    }
    pos += size;
  }
}

/**
 * A put entry's header, read on its own at an offset the repository index gave (no crc check:
 * callers authenticate the object itself): the entry's size, or undefined when the bytes there
 * are not a put of `id`.
 */
export function putEntrySize(head: Buffer, id: Buffer): number | undefined {
  if (head.length < PUT_HEADER || head[8] !== 0) return undefined;
  const size = head.readUInt32LE(4);
  if (size < PUT_HEADER || size > MAX_OBJECT_SIZE) return undefined;
  return head.compare(id, 0, 32, 9, PUT_HEADER) === 0 ? size : undefined;
}

/** The committed put entry of each object (hex id -> entry) after replaying PUT/DELETE; entries after the last COMMIT are ignored. */
export function replayCommittedEntries(entries: Iterable<SegmentEntry>): Map<string, SegmentEntry & { data: Buffer }> {
  const live = new Map<string, SegmentEntry & { data: Buffer }>();
  let pending: SegmentEntry[] = [];
  for (const e of entries) {
    if (e.tag !== 'commit') {
      pending.push(e);
      continue;
    }
    for (const p of pending) {
      const k = (p.id ?? Buffer.alloc(0)).toString('hex');
      if (p.tag === 'put' && p.data) live.set(k, { ...p, data: p.data });
      else live.delete(k);
    }
    pending = [];
  }
  return live;
}

/** Committed objects (hex id -> object) after replaying PUT/DELETE; entries after the last COMMIT are ignored. */
export function replayCommitted(entries: Iterable<SegmentEntry>): Map<string, Buffer> {
  return new Map([...replayCommittedEntries(entries)].map(([k, e]) => [k, e.data]));
}
