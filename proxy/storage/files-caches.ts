// The clients' files caches on the server, between a job that pulled one back and the client's
// next job, which is handed it (DESIGN.md §3: clients keep no borg cache between jobs). Read in
// chunks, never whole: up to MAX_FILES_CACHE each, in the service every job shares.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../../infra/logger.js';
import { MAX_FILES_CACHE } from '../../infra/storage-layout.js';
import { readFilesCache } from '../borg/files-cache.js';

/** A files cache file as checked: which file (it is replaced, never rewritten) and its entries. */
interface CheckedFilesCache {
  ino: number;
  size: number;
  mtimeMs: number;
  /** Entries, or undefined for a malformed file. */
  entries: number | undefined;
}

/**
 * The clients' files caches, as prepareBackup hands them out. Each comes from a client and is
 * checked entry by entry before it is handed out again (borg given a malformed one only warns and
 * reads every file again). That check runs when cleanupJob adopts the file, after the job has
 * ended, so that the client's next job only reads it: checking it then was a good part of
 * preparing an unchanged backup. A file this process did not check (after a restart) is checked
 * when it is read.
 */
export class FilesCaches {
  private readonly checked = new Map<string, Promise<CheckedFilesCache | undefined>>();

  constructor(private readonly log: Logger) {}

  /** Moves a pulled files cache into place (both in the storage folder: one file system). */
  adopt(pulled: string, dest: string) {
    if (!existsSync(pulled)) return;
    try {
      mkdirSync(dirname(dest), { recursive: true, mode: 0o700 });
      renameSync(pulled, dest);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, dest }, 'the files cache of the job could not be kept');
      return;
    }
    // After the activity has answered; a job of the same client waits for it in read().
    const check = () => {
      try {
        return this.open(dest, (fd, st) => this.check(dest, fd, st));
      } catch (err) {
        this.log.warn({ err: (err as Error).message, dest }, 'cannot check the files cache of the job');
        return undefined;
      }
    };
    this.checked.set(dest, new Promise((resolve) => setImmediate(() => resolve(check()))));
  }

  /**
   * Copies the client's files cache from its last job to `dest` if it is well-formed, and says
   * how many entries it has (0: nothing was copied). Streamed: a files cache may be up to
   * MAX_FILES_CACHE, and this service is shared by every job. A file that exists but cannot be
   * read is worth a warning: without it every backup reads and chunks the whole tree again.
   */
  async copy(path: string, dest: string): Promise<{ entries: number }> {
    const known = await this.checked.get(path);
    const r = this.open(path, (fd, st) => {
      const checked = known && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs ? known : this.check(path, fd, st);
      if (checked.entries === undefined) return { entries: 0 };
      copyFd(fd, dest);
      return { entries: checked.entries };
    });
    return r ?? { entries: 0 };
  }

  /** Runs `fn` on the open file (so that a concurrent replacement cannot slip in between). */
  private open<T>(path: string, fn: (fd: number, st: { ino: number; size: number; mtimeMs: number }) => T): T | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.log.warn({ path, code }, 'cannot read the client\'s files cache; its backup will read every file again');
      return undefined;
    }
    try {
      return fn(fd, fstatSync(fd));
    } finally {
      closeSync(fd);
    }
  }

  /** Reads and checks the file open at `fd`, a chunk at a time. */
  private check(path: string, fd: number, st: { ino: number; size: number; mtimeMs: number }): CheckedFilesCache {
    const checked: CheckedFilesCache = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, entries: undefined };
    if (st.size > MAX_FILES_CACHE) {
      this.log.warn({ path, size: st.size }, 'ignoring a files cache that is too large');
      return checked;
    }
    try {
      let entries = 0;
      for (const _ of readFilesCache(chunksOf(fd))) entries++;
      checked.entries = entries;
    } catch (err) {
      this.log.warn({ path, err: (err as Error).message }, 'ignoring a malformed files cache');
    }
    return checked;
  }
}

const CHUNK = 1024 * 1024;

/** The file open at `fd` from its start, a fresh buffer per chunk (the unpacker may keep parts). */
function* chunksOf(fd: number): Generator<Buffer> {
  for (let pos = 0; ; ) {
    const buf = Buffer.allocUnsafe(CHUNK);
    const n = readSync(fd, buf, 0, CHUNK, pos);
    if (n === 0) return;
    pos += n;
    yield buf.subarray(0, n);
  }
}

/** Copies the file open at `fd` into a new file `dest` (0600), a chunk at a time. */
function copyFd(fd: number, dest: string): void {
  const out = openSync(dest, 'wx', 0o600);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n === 0) return;
      writeSync(out, buf, 0, n);
      pos += n;
    }
  } finally {
    closeSync(out);
  }
}
