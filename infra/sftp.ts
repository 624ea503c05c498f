// Promise wrappers over ssh2's SFTP client for the job folder on a client. Paths are absolute on
// the client; nothing here follows a path the client could have planted as a link.
import type { SFTPWrapper } from 'ssh2';

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

/** Downloads a remote file in bulk into a local path (or /proc/self/fd/N). */
export function sftpGetFile(sftp: SFTPWrapper, remote: string, local: string, onProgress: () => void): Promise<void> {
  return new Promise((resolve, reject) => sftp.fastGet(remote, local, { ...SFTP_BULK, step: onProgress }, (err) => (err ? reject(err) : resolve())));
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
