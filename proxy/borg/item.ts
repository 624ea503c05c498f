// One archive item, decoded (BORG_PROTOCOL.md §5.3; borg/item.pyx `Item`, constants.py `ITEM_KEYS`).
// ItemStreamParser (items.ts) only walks the stream for chunk ids; browsing, downloads and restore
// selection need the whole item. Strings stay bytes: paths, user names and link targets are
// whatever the client's file system held, not necessarily UTF-8.
import { BorgFormatError } from './errors.js';
import { ITEM_KEYS } from './manifest.js';
import { asArray, asBigInt, asBool, asBytes, asInt, asMap, type Value } from './msgpack.js';

export interface ChunkRef {
  id: Buffer;
  size: number;
  csize: number;
}

export interface ArchiveItem {
  /** As stored: relative (borg strips the leading slash), '/'-separated, raw bytes. */
  path: Buffer;
  /** st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  user: Buffer | null;
  group: Buffer | null;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  atime?: bigint;
  ctime?: bigint;
  /** Regular files: the file's size (borg 1.2 stores it; older archives may not). */
  size?: number;
  chunks?: ChunkRef[];
  /** Symlinks: the link target; hard-link slaves: the path of their master item. */
  source?: Buffer;
  /** A regular file whose later items with the same inode are slaves (`source` = this path). */
  hardlinkMaster: boolean;
  rdev?: number;
  /** Extended attributes: name (binary string) → value. */
  xattrs?: Map<string, Buffer>;
  /** Part files of an interrupted backup (checkpoints). */
  part?: number;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;

export type ItemType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'chardev' | 'blockdev' | 'socket' | 'other';

export function itemType(item: ArchiveItem): ItemType {
  switch (item.mode & S_IFMT) {
    case S_IFREG:
      return item.source !== undefined ? 'hardlink' : 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFIFO:
      return 'fifo';
    case S_IFCHR:
      return 'chardev';
    case S_IFBLK:
      return 'blockdev';
    case S_IFSOCK:
      return 'socket';
    default:
      return 'other';
  }
}

const optBytes = (v: Value | undefined, what: string): Buffer | null => (v === undefined || v === null ? null : asBytes(v, what, { maxLen: 65536 }));
const optTime = (v: Value | undefined, what: string): bigint | undefined => (v === undefined ? undefined : asBigInt(v, what));

/** Decodes one top-level value of an items stream; anything off borg's item shape is a BorgFormatError. */
export function decodeItem(v: Value): ArchiveItem {
  const m = asMap(v, 'item');
  for (const k of m.keys()) if (!ITEM_KEYS.includes(k)) throw new BorgFormatError(`item: unexpected key ${JSON.stringify(k)}`, 'unexpected-key');
  const path = asBytes(m.get('path'), 'item path', { maxLen: 65536 });
  if (m.get('mtime') === undefined) throw new BorgFormatError('item: missing required key mtime', 'missing-key');
  const item: ArchiveItem = {
    path,
    mode: m.has('mode') ? asInt(m.get('mode'), 'mode', { min: 0, max: 0xffffffff }) : 0,
    uid: m.has('uid') ? asInt(m.get('uid'), 'uid', { min: 0 }) : 0,
    gid: m.has('gid') ? asInt(m.get('gid'), 'gid', { min: 0 }) : 0,
    user: optBytes(m.get('user'), 'user'),
    group: optBytes(m.get('group'), 'group'),
    mtime: asBigInt(m.get('mtime'), 'mtime'),
    atime: optTime(m.get('atime'), 'atime'),
    ctime: optTime(m.get('ctime'), 'ctime'),
    hardlinkMaster: m.has('hardlink_master') ? asBool(m.get('hardlink_master'), 'hardlink_master') : false,
  };
  if (m.has('size')) item.size = asInt(m.get('size'), 'size', { min: 0 });
  if (m.has('source')) item.source = asBytes(m.get('source'), 'source', { maxLen: 65536 });
  if (m.has('rdev')) item.rdev = asInt(m.get('rdev'), 'rdev', { min: 0 });
  if (m.has('part')) item.part = asInt(m.get('part'), 'part', { min: 0 });
  if (m.has('chunks')) {
    item.chunks = asArray(m.get('chunks'), 'chunks').map((e) => {
      const [id, size, csize] = asArray(e, 'chunk entry', { len: 3 });
      return { id: asBytes(id, 'chunk id', { len: 32 }), size: asInt(size, 'chunk size', { min: 0 }), csize: asInt(csize, 'chunk csize', { min: 0 }) };
    });
  }
  if (m.has('xattrs')) {
    const x = new Map<string, Buffer>();
    for (const [k, val] of asMap(m.get('xattrs'), 'xattrs')) x.set(k, asBytes(val, 'xattr value'));
    item.xattrs = x;
  }
  return item;
}

/** The file's size: `size` when stored, else the sum of its chunks. */
export function itemSize(item: ArchiveItem): number {
  if (item.size !== undefined) return item.size;
  let n = 0;
  for (const c of item.chunks ?? []) n += c.size;
  return n;
}
