// The job folder on the client, ~/.borgcube/jobs/<job id> (0700): the job key, its passphrase,
// the job's SSH credential, the known_hosts entry of BorgCube's sshd, the prepared cache and,
// while borg runs, run.sh and its files (run-script.ts). No secret ever appears on a command
// line: borg reads them through BORG_KEY_FILE / BORG_PASSCOMMAND / ssh -i, all pointing here (a
// restore's authenticated job key is a repokey, which borg asks the proxy for with load_key).
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fchownSync, fstatSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, posix } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { SFTPWrapper } from 'ssh2';
import type { Job } from '../../db/schema.js';
import type { Account } from '../../infra/accounts.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import { closeAll, fdPath, openBelow, openEntries, openIn, UnsafePathError } from '../../infra/no-follow.js';
import { NotAFolderError, RefusedRemoteFileError, sftpExists, sftpGetCapped, sftpMkdirPrivate, sftpPutFile, sftpWriteFile } from '../../infra/sftp.js';
import { shellCommand, shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';
import { normalizeKey } from '../../infra/ssh.js';
import { sshdPaths } from '../../infra/sshd.js';
import { jobClientFilesDir, jobPulledFilesCachePath, jobServerDir, MAX_FILES_CACHE } from '../../infra/storage-layout.js';
import { UNDO_SCRIPT } from './dump-streams.js';
import { MADE_TARGET } from './restore-target.js';
import { stopRunScript } from './run-script.js';

const { O_RDONLY, O_DIRECTORY, O_WRONLY, O_CREAT, O_EXCL } = constants;

/** Where the job folder lives on the client, relative to the SSH user's home. */
export const clientJobDir = (jobId: string) => `.borgcube/jobs/${jobId}`;

/** What the job's cleanup undid on the client (a dump restore's database), in one line. */
export interface UndoOutcome {
  ok: boolean;
  message: string;
}

export interface JobFolderDeps {
  config: Config;
  log: Logger;
  storageAccount(): Account;
}

/** A folder the job needs on the client; a link or a file there is the client's configuration problem. */
export async function mkdirPrivate(sftp: SFTPWrapper, p: string): Promise<void> {
  try {
    await sftpMkdirPrivate(sftp, p);
  } catch (err) {
    if (err instanceof NotAFolderError) throw ApplicationFailure.nonRetryable(err.message, 'ClientConfigError');
    throw err;
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function createJobFolders(deps: JobFolderDeps) {
  const { config, log } = deps;
  // These run in the storage worker, as the storage account, which owns its folder; tests and
  // benchmarks run them as root. Either way nothing below the folder is opened through a link
  // (infra/no-follow.ts): a file that is not what the service wrote is refused, not followed.
  const storageAnchor = config.paths.storageDir;

  /**
   * Uploads what prepareBackup wrote for the client into a fresh private job folder `dir` and
   * checks every file arrived as sent.
   */
  async function push(conn: SshConnection, jobId: string, dir: string): Promise<void> {
    const sftp = await conn.sftp();
    await mkdirPrivate(sftp, posix.dirname(posix.dirname(dir)));
    await mkdirPrivate(sftp, posix.dirname(dir));
    // A previous round may have left a half-written folder: start from nothing.
    if (await sftpExists(sftp, dir)) await conn.exec(['rm', '-rf', '--', dir], { timeoutMs: 60_000 });
    await mkdirPrivate(sftp, dir);
    // Without following links (see pullFilesCache).
    const srcFd = openBelow(storageAnchor, jobClientFilesDir(config, jobId), O_RDONLY | O_DIRECTORY);
    const sent = await uploadTree(sftp, srcFd, dir, () => heartbeat()).finally(() => closeSync(srcFd));
    const hostKey = normalizeKey(readFileSync(sshdPaths(config.paths.sshdDir).hostPublicKey, 'utf8'));
    const knownHosts = `[${config.ssh.host}]:${config.ssh.port} ${hostKey}\n`;
    await sftpWriteFile(sftp, posix.join(dir, 'known_hosts'), knownHosts, 0o600);
    sent.set(posix.join(dir, 'known_hosts'), createHash('sha256').update(knownHosts).digest('hex'));
    await verifyPushed(conn, sent);
    log.info({ job: jobId, dir }, 'job folder pushed');
  }

  /**
   * Copies the client's files cache into the job's server folder, where cleanupJob adopts it for
   * the client's next job if this one succeeded (the client cleanup may run before that is known).
   * The job folder is the client's: whatever it put there (a link, a FIFO, a device, a file of
   * 50 GB, a server that lies about sizes or stops answering) costs at most MAX_FILES_CACHE bytes
   * and a bounded wait, and is then simply not kept — the backup's outcome does not change.
   * Returns what happened, for the job's log.
   */
  async function pullFilesCache(conn: SshConnection, job: Job, dir: string): Promise<{ bytes: number } | { refused: string } | undefined> {
    // Nothing in the job's server folder is opened by a path that could lead elsewhere through a
    // link (infra/no-follow.ts).
    let serverDir: number;
    try {
      serverDir = openBelow(storageAnchor, jobServerDir(config, job.id), O_RDONLY | O_DIRECTORY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const state = readJobState(serverDir);
      if (!state) return undefined;
      const sftp = await conn.sftp();
      const remote = posix.join(dir, 'cache', state.fakeRepoId, 'files');
      if (!(await sftpExists(sftp, remote))) return undefined;
      try {
        const bytes = await adoptPulled(config, deps.storageAccount(), serverDir, job.id, (fd) => sftpGetCapped(sftp, remote, fd, { max: MAX_FILES_CACHE, onProgress: () => heartbeat() }));
        return { bytes };
      } catch (err) {
        if (!(err instanceof RefusedRemoteFileError)) throw err;
        log.warn({ job: job.id, reason: err.message }, 'files cache from the client refused; not kept');
        return { refused: err.message };
      }
    } finally {
      closeSync(serverDir);
    }
  }

  /**
   * Stops borg, undoes, removes the job folder (removeScript); returns undo.sh's line, if it ran.
   * `madeTarget`: a failed restore's target, removed with the folders above it that the job made,
   * as far as they are empty.
   */
  async function remove(conn: SshConnection, dir: string, madeTarget?: string): Promise<UndoOutcome | undefined> {
    const r = await conn.execRaw(removeScript(dir, madeTarget), { timeoutMs: 120_000, maxOutput: 8192 });
    if (r.code !== 0) throw new Error(`removing ${dir} on the client failed: ${r.stderr.toString('utf8').trim().slice(0, 300)}`);
    if (await sftpExists(await conn.sftp(), dir)) throw new Error(`${dir} is still on the client`);
    return undoOutcome(r.stdout.toString('utf8'));
  }

  return { push, pullFilesCache, remove };
}

/**
 * Stops borg if it still runs, runs what a dump restore left to undo (dump-streams.ts
 * undoScript: run.sh was stopped before it could drop the database it created; it prints
 * "undone|undo-failed LINE"), then removes the folder: one exec (each costs a session on the
 * client). Leaves no empty BorgCube folders behind either (rmdir fails harmlessly while other
 * jobs run).
 */
function removeScript(dir: string, madeTarget?: string): string {
  const undo = shellQuote(posix.join(dir, UNDO_SCRIPT));
  const made = shellQuote(posix.join(dir, MADE_TARGET));
  return [
    `(\n${stopRunScript(dir)}\n)`,
    `if [ -f ${undo} ]; then if out=$(sh ${undo} 2>&1 < /dev/null); then printf 'undone %s\\n' "$out"; else printf 'undo-failed %s\\n' "$out"; fi; fi`,
    // rmdir removes only empty folders: whatever borg restored stays, and the folders above it. A
    // subshell, so that nothing in the client's record (a number with a leading zero is no number
    // to the shell's arithmetic) can keep the folder's removal below from running.
    ...(madeTarget
      ? [`(if [ -f ${made} ]; then n=$(head -c 20 -- ${made}); case $n in ''|0?*|*[!0-9]*) n=0;; esac; d=${shellQuote(madeTarget)}; while [ "$n" -gt 0 ] && rmdir -- "$d" 2>/dev/null; do n=$((n-1)); d=$(dirname -- "$d"); done; fi)`]
      : []),
    `${shellCommand(['rm', '-rf', '--', dir])} || exit $?; ${shellCommand(['rmdir', '--', posix.dirname(dir), posix.dirname(posix.dirname(dir))])} 2>/dev/null; exit 0`,
  ].join('; ');
}

/** removeScript's undo line; it is the client's output: one line, bounded, no control characters. */
function undoOutcome(stdout: string): UndoOutcome | undefined {
  const m = /^(undone|undo-failed) (.*)$/m.exec(stdout);
  return m ? { ok: m[1] === 'undone', message: m[2]!.replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, 600) } : undefined;
}

/** Writes the pulled files cache into the open server folder for the storage account, which adopts it. */
async function adoptPulled(config: Config, acct: Account, serverDir: number, jobId: string, download: (localFd: number) => Promise<number>): Promise<number> {
  const name = basename(jobPulledFilesCachePath(config, jobId));
  const tmp = `${fdPath(serverDir)}/${name}.tmp`;
  rmSync(tmp, { force: true }); // a link there is removed, not followed
  const fd = openIn(serverDir, `${name}.tmp`, O_WRONLY | O_CREAT | O_EXCL, 0o600);
  let bytes: number;
  try {
    bytes = await download(fd);
    fchownSync(fd, acct.uid, acct.gid);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, `${fdPath(serverDir)}/${name}`);
  return bytes;
}

/** The job's state.json in its open server folder (no links followed), or undefined when there is none. */
function readJobState(serverDir: number): { fakeRepoId: string } | undefined {
  let fd: number;
  try {
    fd = openIn(serverDir, 'state.json', O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new UnsafePathError('state.json is not a file');
    return JSON.parse(readFileSync(fd, 'utf8')) as { fakeRepoId: string };
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies an open local folder (infra/no-follow.ts: links, FIFOs and the like are refused) into a
 * remote one; returns the SHA-256 of every file sent, by remote path. Small files (all but the
 * prepared cache's indexes) go in one SFTP write each.
 */
async function uploadTree(sftp: SFTPWrapper, dirFd: number, remoteDir: string, onProgress: () => void, sent = new Map<string, string>()): Promise<Map<string, string>> {
  // The entries of a folder go up side by side: each file is several SFTP round trips (open,
  // write, close), and one after another each file waited for all of the previous one's.
  const uploads: Array<Promise<unknown>> = [];
  const entries = openEntries(dirFd);
  try {
    for (const e of entries) {
      const r = posix.join(remoteDir, e.name);
      if (e.kind === 'dir') {
        uploads.push(mkdirPrivate(sftp, r).then(() => uploadTree(sftp, e.fd, r, onProgress, sent)));
      } else if (e.size <= 1024 * 1024) {
        const data = readFileSync(e.fd);
        sent.set(r, createHash('sha256').update(data).digest('hex'));
        uploads.push(sftpWriteFile(sftp, r, data, 0o600));
      } else {
        // Hashed while it goes up (the file is the server's, written by prepareBackup, unchanged
        // since): afterwards, hashing took longer than the upload itself.
        const hashed = sha256File(fdPath(e.fd)).then((digest) => void sent.set(r, digest));
        uploads.push(hashed, sftpPutFile(sftp, fdPath(e.fd), r, 0o600, onProgress));
      }
    }
    // Every upload has ended before this returns, failed or not: none is left writing, and no
    // failure is left unhandled.
    const failed = (await Promise.allSettled(uploads)).find((f) => f.status === 'rejected');
    if (failed) throw failed.reason;
    return sent;
  } finally {
    closeAll(entries.map((e) => e.fd));
  }
}

/**
 * Every pushed file must be on the client exactly as sent: borg given a damaged key or
 * credential fails only later, in every retry of the run, with a misleading message.
 */
export async function verifyPushed(conn: SshConnection, sent: Map<string, string>): Promise<void> {
  if (!sent.size) return;
  const r = await conn.exec(['sha256sum', '--', ...sent.keys()], { timeoutMs: 120_000 });
  const got = new Map<string, string>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) got.set(m[2]!, m[1]!);
  }
  for (const [path, digest] of sent) {
    if (got.get(path) !== digest) throw new Error(`${posix.basename(path)} arrived damaged in the job folder on the client (SHA-256 ${got.get(path)?.slice(0, 16) ?? 'unreadable'}…, sent ${digest.slice(0, 16)}…)`);
  }
}
