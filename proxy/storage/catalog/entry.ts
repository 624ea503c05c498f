// One entry of an archive's catalog: what browsing shows of an item (no chunk list), encoded as a
// compact binary record for the index file (index-build.ts, index-file.ts).
import { itemSize, itemType, type ArchiveItem, type ItemType } from '../../borg/item.js';

export interface CatalogEntry {
  /** The parent directory's path (raw bytes, '' for the archive's top level). */
  parent: Buffer;
  /** The last path component (raw bytes). */
  name: Buffer;
  type: ItemType;
  mode: number;
  uid: number;
  gid: number;
  user: Buffer | null;
  group: Buffer | null;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  size: number;
  /** Symlink target, or the path a hard link points to. */
  target: Buffer | null;
  rdev: number | null;
  /** A directory the archive holds no item for (an ancestor of what was backed up). */
  implicit: boolean;
  /**
   * Bytes the item takes in a tar of the whole archive (tar-select.ts tarEntryOfItem; hard links
   * as links to their master); 0 for what a tar leaves out (implicit directories, sockets).
   */
  tarBytes: number;
}

const TYPES: ItemType[] = ['file', 'dir', 'symlink', 'hardlink', 'fifo', 'chardev', 'blockdev', 'socket', 'other'];
const FIXED = 64;
const NONE = 0xffffffff;

export function splitPath(path: Buffer): { parent: Buffer; name: Buffer } {
  const slash = path.lastIndexOf(0x2f);
  return slash < 0 ? { parent: Buffer.alloc(0), name: path } : { parent: path.subarray(0, slash), name: path.subarray(slash + 1) };
}

export const joinPath = (parent: Buffer, name: Buffer) => (parent.length ? Buffer.concat([parent, Buffer.from('/'), name]) : name);

export function entryOfItem(item: ArchiveItem): CatalogEntry {
  const { parent, name } = splitPath(item.path);
  const type = itemType(item);
  return {
    parent,
    name,
    type,
    mode: item.mode,
    uid: item.uid,
    gid: item.gid,
    user: item.user,
    group: item.group,
    mtime: item.mtime,
    size: type === 'file' || type === 'hardlink' ? itemSize(item) : 0,
    target: item.source ?? null,
    rdev: item.rdev ?? null,
    implicit: false,
    tarBytes: 0,
  };
}

export function implicitDir(path: Buffer): CatalogEntry {
  const { parent, name } = splitPath(path);
  return { parent, name, type: 'dir', mode: 0o040755, uid: 0, gid: 0, user: null, group: null, mtime: 0n, size: 0, target: null, rdev: null, implicit: true, tarBytes: 0 };
}

const len = (b: Buffer | null) => (b ? b.length : NONE);

/** Record layout: fixed fields, then parent, name, user, group, target bytes. */
export function encodeEntry(e: CatalogEntry): Buffer {
  const parts = [e.parent, e.name, e.user, e.group, e.target];
  const total = FIXED + parts.reduce((n, p) => n + (p?.length ?? 0), 0);
  const b = Buffer.allocUnsafe(total);
  b.writeUInt8(TYPES.indexOf(e.type), 0);
  b.writeUInt8(e.implicit ? 1 : 0, 1);
  b.writeUInt16LE(0, 2);
  b.writeUInt32LE(e.mode >>> 0, 4);
  b.writeUInt32LE(e.uid >>> 0, 8);
  b.writeUInt32LE(e.gid >>> 0, 12);
  b.writeBigInt64LE(e.mtime, 16);
  b.writeDoubleLE(e.size, 24);
  b.writeDoubleLE(e.rdev ?? -1, 32);
  b.writeUInt32LE(e.parent.length, 40);
  b.writeUInt32LE(e.name.length, 44);
  b.writeUInt16LE(e.user ? e.user.length : 0xffff, 48);
  b.writeUInt16LE(e.group ? e.group.length : 0xffff, 50);
  b.writeUInt32LE(len(e.target), 52);
  b.writeDoubleLE(e.tarBytes, 56);
  let o = FIXED;
  for (const p of parts) if (p) o += p.copy(b, o);
  return b;
}

/** Decodes the record at `off`; returns it and the offset after it. Throws on a truncated record. */
export function decodeEntry(b: Buffer, off: number): { entry: CatalogEntry; next: number } {
  if (off + FIXED > b.length) throw new Error('catalog record truncated');
  const type = TYPES[b.readUInt8(off)];
  if (!type) throw new Error('catalog record has an unknown type');
  const lens = [b.readUInt32LE(off + 40), b.readUInt32LE(off + 44), b.readUInt16LE(off + 48), b.readUInt16LE(off + 50), b.readUInt32LE(off + 52)];
  let o = off + FIXED;
  const fields = lens.map((l, i) => {
    if (l === NONE || (i >= 2 && i <= 3 && l === 0xffff)) return null;
    if (o + l > b.length) throw new Error('catalog record truncated');
    const f = b.subarray(o, o + l);
    o += l;
    return f;
  });
  const rdev = b.readDoubleLE(off + 32);
  return {
    entry: {
      parent: fields[0]!,
      name: fields[1]!,
      user: fields[2] ?? null,
      group: fields[3] ?? null,
      target: fields[4] ?? null,
      type,
      implicit: b.readUInt8(off + 1) === 1,
      mode: b.readUInt32LE(off + 4),
      uid: b.readUInt32LE(off + 8),
      gid: b.readUInt32LE(off + 12),
      mtime: b.readBigInt64LE(off + 16),
      size: b.readDoubleLE(off + 24),
      rdev: rdev < 0 ? null : rdev,
      tarBytes: b.readDoubleLE(off + 56),
    },
    next: o,
  };
}

/** The sort order of the index: by parent directory, then name, bytewise. */
export function compareEntries(a: CatalogEntry, b: CatalogEntry): number {
  return Buffer.compare(a.parent, b.parent) || Buffer.compare(a.name, b.name);
}

/** Parent and name of an encoded record, without decoding the rest (sorting and merging). */
export function recordKey(b: Buffer): { parent: Buffer; name: Buffer } {
  const pl = b.readUInt32LE(40);
  const nl = b.readUInt32LE(44);
  return { parent: b.subarray(FIXED, FIXED + pl), name: b.subarray(FIXED + pl, FIXED + pl + nl) };
}

export function compareRecords(a: Buffer, b: Buffer): number {
  const ka = recordKey(a);
  const kb = recordKey(b);
  return Buffer.compare(ka.parent, kb.parent) || Buffer.compare(ka.name, kb.name);
}

/** Bytes of the record at `off`, or undefined when `b` does not hold its fixed part. */
export function recordLength(b: Buffer, off: number): number | undefined {
  if (off + FIXED > b.length) return undefined;
  const opt = (l: number, none: number) => (l === none ? 0 : l);
  return FIXED + b.readUInt32LE(off + 40) + b.readUInt32LE(off + 44) + opt(b.readUInt16LE(off + 48), 0xffff) + opt(b.readUInt16LE(off + 50), 0xffff) + opt(b.readUInt32LE(off + 52), NONE);
}

/** The full path of the record at `off` as a latin1 string of its bytes (searching). */
export function recordPathLatin1(b: Buffer, off: number): string {
  const pl = b.readUInt32LE(off + 40);
  const nl = b.readUInt32LE(off + 44);
  const name = b.toString('latin1', off + FIXED + pl, off + FIXED + pl + nl);
  return pl ? `${b.toString('latin1', off + FIXED, off + FIXED + pl)}/${name}` : name;
}

/** What a tar-size sum needs of the record at `off`. */
export function recordTar(b: Buffer, off: number): { implicit: boolean; hardlinkTo: Buffer | null; tarBytes: number } {
  const type = TYPES[b.readUInt8(off)];
  const tl = b.readUInt32LE(off + 52);
  const end = off + (recordLength(b, off) ?? FIXED);
  return { implicit: b.readUInt8(off + 1) === 1, hardlinkTo: type === 'hardlink' && tl !== NONE ? b.subarray(end - tl, end) : null, tarBytes: b.readDoubleLE(off + 56) };
}

export const recordImplicit = (b: Buffer) => b.readUInt8(1) === 1;
