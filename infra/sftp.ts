// Promise wrappers over ssh2's SFTP client for the job folder on a client. Paths are absolute on
// the client; nothing here follows a path the client could have planted as a link.
import { write } from 'node:fs';
import type { SFTPWrapper, Stats } from 'ssh2';

/**
 * Transfers of the cache files (MiBs) and the deployed borg: ssh2's default of 64 requests of
 * 32 KiB in flight is several times slower on a fresh connection than 8 of 128 KiB (ssh2 still
 * splits them to what the server's limits@openssh.com allows; see docs/performance.md).
 */
const SFTP_BULK = { chunkSize: 128 * 1024, concurrency: 8 } as const;

/** What sftpMkdirPrivate found where it was to make a folder. */
export class NotAFolderError extends Error {
  override name = 'NotAFolderError';
}

export function sftpRealpath(sftp: SFTPWrapper, p: string): Promise<string> {
  return new Promise((resolve, reject) => sftp.realpath(p, (err, abs) => (err ? reject(err) : resolve(abs))));
}

export function sftpStat(sftp: SFTPWrapper, p: string): Promise<{ size: number; isDir: boolean; isLink: boolean } | undefined> {
  return new Promise((resolve, reject) =>
    sftp.lstat(p, (err, st) => {
      if (err) return (err as { code?: number }).code === 2 ? resolve(undefined) : reject(err);
      resolve({ size: st.size, isDir: st.isDirectory(), isLink: st.isSymbolicLink() });
    }),
  );
}

export async function sftpExists(sftp: SFTPWrapper, p: string): Promise<boolean> {
  return (await sftpStat(sftp, p)) !== undefined;
}

/** mkdir 0700, or check that what is there is a real folder (not a symlink planted elsewhere). */
export async function sftpMkdirPrivate(sftp: SFTPWrapper, p: string): Promise<void> {
  const st = await sftpStat(sftp, p);
  if (st) {
    if (!st.isDir || st.isLink) throw new NotAFolderError(`${p} on the client is not a folder`);
    await new Promise<void>((resolve, reject) => sftp.chmod(p, 0o700, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => sftp.mkdir(p, { mode: 0o700 }, (err) => (err ? reject(err) : resolve())));
}

export function sftpWriteFile(sftp: SFTPWrapper, p: string, data: string | Buffer, mode: number): Promise<void> {
  return new Promise((resolve, reject) => sftp.writeFile(p, data, { mode }, (err) => (err ? reject(err) : resolve())));
}

/** Uploads a local file (a path, or /proc/self/fd/N) in bulk; `onProgress` runs as parts arrive. */
export function sftpPutFile(sftp: SFTPWrapper, local: string, remote: string, mode: number, onProgress: () => void): Promise<void> {
  return new Promise((resolve, reject) => sftp.fastPut(local, remote, { ...SFTP_BULK, mode, step: onProgress }, (err) => (err ? reject(err) : resolve())));
}

/**
 * Up to `buf.length` bytes of a file from `offset`, read into `buf` and returned as a copy of
 * what was read (empty when there is nothing new or no file yet).
 */
export function sftpReadFrom(sftp: SFTPWrapper, p: string, offset: number, buf: Buffer): Promise<Buffer> {
  const max = buf.length;
  return new Promise((resolve, reject) => {
    sftp.open(p, 'r', (err, handle) => {
      if (err) return (err as { code?: number }).code === 2 ? resolve(Buffer.alloc(0)) : reject(err);
      let got = 0;
      const readMore = () => {
        // ssh2 reads at most ~32 KiB per request; loop until EOF or `max`.
        sftp.read(handle, buf, got, Math.min(32768, max - got), offset + got, (e, n) => {
          if (e || n === 0 || got + n >= max) {
            if (!e && n > 0) got += n;
            sftp.close(handle, () => {});
            if (e && (e as { code?: number }).code !== 1) return reject(e);
            return resolve(Buffer.from(buf.subarray(0, got)));
          }
          got += n;
          readMore();
        });
      };
      readMore();
    });
  });
}

/** A small file's text (up to 4 KiB), or undefined when there is none. */
export async function sftpReadSmall(sftp: SFTPWrapper, p: string): Promise<string | undefined> {
  if (!(await sftpExists(sftp, p))) return undefined;
  return (await sftpReadFrom(sftp, p, 0, Buffer.allocUnsafe(4096))).toString('utf8');
}

/** Why sftpGetCapped did not copy a file: what was there, or that the client's server misbehaved. */
export class RefusedRemoteFileError extends Error {
  override name = 'RefusedRemoteFileError';
}

/** What a refused file was, for the log line. */
function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a folder';
  return st.isFile() ? 'a file' : 'not a regular file';
}

/** One SFTP request with a deadline; on expiry the whole channel is ended (a request stuck in
 *  the client's sftp-server, e.g. an open of a FIFO, would block every later one). */
function timed<T>(sftp: SFTPWrapper, ms: number, what: string, op: (cb: (err: Error | undefined | null, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sftp.end();
      reject(new RefusedRemoteFileError(`${what} got no answer from the client within ${Math.round(ms / 1000)} s`));
    }, ms);
    op((err, v) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(v);
    });
  });
}

/**
 * Copies a regular file of the client into an open local file, reading at most `max` bytes
 * whatever the client's SFTP server claims: a link, FIFO or device is refused before it is
 * opened (lstat) and again once open (fstat), a file that is or grows larger than `max` is
 * refused at `max + 1` bytes, and every request has a deadline. Streams through one buffer, so
 * the memory used does not depend on the file. Returns the bytes copied.
 */
export async function sftpGetCapped(
  sftp: SFTPWrapper,
  remote: string,
  localFd: number,
  o: { max: number; requestTimeoutMs?: number; totalTimeoutMs?: number; onProgress?: () => void },
): Promise<number> {
  const reqMs = o.requestTimeoutMs ?? 60_000;
  const deadline = Date.now() + (o.totalTimeoutMs ?? 15 * 60_000);
  const st = await timed<Stats>(sftp, reqMs, 'lstat', (cb) => sftp.lstat(remote, cb));
  if (!st.isFile()) throw new RefusedRemoteFileError(`${remote} is ${kindOf(st)}`);
  if (st.size > o.max) throw new RefusedRemoteFileError(`${remote} is ${st.size} bytes, more than ${o.max}`);
  const handle = await timed<Buffer>(sftp, reqMs, 'open', (cb) => sftp.open(remote, 'r', cb));
  try {
    // Replaced between lstat and open (open follows links): what is open must be a regular file too.
    const fst = await timed<Stats>(sftp, reqMs, 'fstat', (cb) => sftp.fstat(handle, cb));
    if (!fst.isFile()) throw new RefusedRemoteFileError(`${remote} is ${kindOf(fst)} once opened`);
    const buf = Buffer.allocUnsafe(256 * 1024);
    let got = 0;
    for (;;) {
      if (Date.now() > deadline) throw new RefusedRemoteFileError(`${remote}: not read within ${Math.round((o.totalTimeoutMs ?? 15 * 60_000) / 1000)} s`);
      // One byte more than allowed is enough to know the file is too large.
      const want = Math.min(buf.length, o.max + 1 - got);
      const n = await timed<number>(sftp, reqMs, 'read', (cb) =>
        sftp.read(handle, buf, 0, want, got, (err, bytes) => {
          if (err && (err as { code?: number }).code === 1) return cb(undefined, 0); // EOF
          cb(err, bytes);
        }),
      );
      if (n === 0) return got;
      if (got + n > o.max) throw new RefusedRemoteFileError(`${remote} has more than ${o.max} bytes (it claimed ${fst.size})`);
      await new Promise<void>((resolve, reject) => write(localFd, buf, 0, n, got, (err) => (err ? reject(err) : resolve())));
      got += n;
      o.onProgress?.();
    }
  } finally {
    // Not awaited: after a timeout the channel is gone, and a close must not hang the caller.
    sftp.close(handle, () => {});
  }
}
