// Which items a download holds, and as which tar type.
import { itemSize, itemType, type ArchiveItem, type ItemType } from '../../borg/item.js';
import { entryBytes, type TarEntry, type TarType } from './tar.js';

/** Tar types of item types; a hard link's item is a regular file here (linked up by the caller). */
const TAR_TYPES: Partial<Record<ItemType, TarType>> = { file: 'file', hardlink: 'file', dir: 'dir', symlink: 'symlink', fifo: 'fifo', chardev: 'chardev', blockdev: 'blockdev' };

/** The tar type of an item; undefined for what tar cannot hold (sockets, unknown types). */
export function itemTarType(item: ArchiveItem): TarType | undefined {
  return TAR_TYPES[itemType(item)];
}

/**
 * The tar entry of an item as a download of the whole archive writes it: a hard link (borg 1.2:
 * `source` on a non-symlink) as a link to its master. Undefined for what tar cannot hold.
 */
export function tarEntryOfItem(item: ArchiveItem): TarEntry | undefined {
  const type = itemTarType(item);
  if (!type) return undefined;
  const entry: TarEntry = { path: item.path, type, mode: item.mode & 0o7777, uid: item.uid, gid: item.gid, uname: item.user, gname: item.group, mtime: item.mtime, size: 0, rdev: item.rdev, xattrs: item.xattrs };
  if (type === 'symlink') return { ...entry, linkname: item.source };
  if (item.source !== undefined) return { ...entry, type: 'hardlink', linkname: item.source };
  if (type === 'file') return { ...entry, size: itemSize(item) };
  return entry;
}

/** Bytes of the item in a tar of the whole archive (0: left out). */
export function itemTarBytes(item: ArchiveItem): number {
  const e = tarEntryOfItem(item);
  return e ? entryBytes(e) : 0;
}

/** Normalizes a requested path: no leading or trailing slashes, no empty, '.' or '..' components. */
export function normalizePath(p: Buffer): Buffer {
  const parts = p
    .toString('latin1')
    .split('/')
    .filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new RangeError('a path may not contain ".."');
  return Buffer.from(parts.join('/'), 'latin1');
}

/**
 * Whether an item path is in the selection: one of `paths` itself or below it. No paths (or the
 * top level '') select everything.
 */
export function selectionOf(paths: Buffer[]): (path: Buffer) => boolean {
  if (!paths.length || paths.some((p) => p.length === 0)) return () => true;
  const exact = new Set(paths.map((p) => p.toString('latin1')));
  return (path) => {
    const s = path.toString('latin1');
    if (exact.has(s)) return true;
    for (let i = s.indexOf('/'); i >= 0; i = s.indexOf('/', i + 1)) if (exact.has(s.slice(0, i))) return true;
    return false;
  };
}
