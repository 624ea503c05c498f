// Opening files inside folders that a less privileged account controls, from a process that runs
// as root (the worker reads the job files the repository service — storage account — prepared,
// and writes the files cache it pulls back into that account's folder). A plain path would follow
// any symbolic link that account put in it, at any component, so a compromised storage account
// could make root upload root's own files (the server's SSH key) to a client, or overwrite and
// chown a file of its choosing. Here every component is opened relative to the folder before it,
// with O_NOFOLLOW, and later work goes through /proc/self/fd/N: the open file itself, whatever
// happens to the path afterwards. (Linux only, like the rest of BorgCube.)
import { closeSync, constants, fstatSync, openSync, readdirSync } from 'node:fs';
import { relative, sep } from 'node:path';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;

export class UnsafePathError extends Error {
  override name = 'UnsafePathError';
}

/** The path of an open file descriptor: opening it reopens that file, not whatever the original path names now. */
export const fdPath = (fd: number) => `/proc/self/fd/${fd}`;

function openOne(parentFd: number, name: string, flags: number, mode?: number, shown = name): number {
  if (!name || name === '.' || name === '..' || name.includes('/')) throw new UnsafePathError(`${shown}: not a plain name`);
  try {
    return openSync(`${fdPath(parentFd)}/${name}`, flags | O_NOFOLLOW, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // O_NOFOLLOW on a symbolic link: ELOOP; with O_DIRECTORY (a folder on the way), ENOTDIR.
    if (code === 'ELOOP') throw new UnsafePathError(`${shown} is a symbolic link; refused`);
    if (code === 'ENOTDIR' && flags & O_DIRECTORY) throw new UnsafePathError(`${shown}: ${name} is a symbolic link or not a folder; refused`);
    throw err;
  }
}

/**
 * Opens `path`, which lies below `anchor` (a folder only root controls): each component below the
 * anchor without following links. `flags` are for the last component (O_NOFOLLOW is added);
 * O_NONBLOCK is always added so a FIFO planted there cannot make the open hang.
 */
export function openBelow(anchor: string, path: string, flags: number, mode?: number): number {
  const rel = relative(anchor, path);
  if (!rel || rel.startsWith('..') || rel.startsWith(sep)) throw new UnsafePathError(`${path} is not below ${anchor}`);
  const parts = rel.split(sep);
  let dir = openSync(anchor, O_RDONLY | O_DIRECTORY);
  try {
    for (const part of parts.slice(0, -1)) {
      const next = openOne(dir, part, O_RDONLY | O_DIRECTORY | O_NONBLOCK, undefined, path);
      closeSync(dir);
      dir = next;
    }
    return openOne(dir, parts.at(-1)!, flags | O_NONBLOCK, mode, path);
  } finally {
    closeSync(dir);
  }
}

/** Opens `name` in the open folder `dirFd` (no links followed; O_NONBLOCK as in openBelow). */
export function openIn(dirFd: number, name: string, flags: number, mode?: number): number {
  return openOne(dirFd, name, flags | O_NONBLOCK, mode);
}

export type Entry = { name: string; fd: number; kind: 'dir' | 'file'; size: number };

/**
 * The entries of the open folder `dirFd`, each opened read-only without following links. Anything
 * but regular files and folders (links, FIFOs, devices, sockets) is refused. The caller closes
 * the returned descriptors (closeAll).
 */
export function openEntries(dirFd: number): Entry[] {
  const out: Entry[] = [];
  const opened: number[] = [];
  try {
    for (const name of readdirSync(fdPath(dirFd))) {
      const fd = openIn(dirFd, name, O_RDONLY);
      opened.push(fd);
      const st = fstatSync(fd);
      if (!st.isDirectory() && !st.isFile()) throw new UnsafePathError(`${name} is neither a file nor a folder; refused`);
      out.push({ name, fd, kind: st.isDirectory() ? 'dir' : 'file', size: st.size });
    }
    return out;
  } catch (err) {
    closeAll(opened);
    throw err;
  }
}

export function closeAll(fds: number[]) {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }
}
