// The borg a job runs on the client: the client's own (1.2.x or 1.4.x, the versions the proxy
// speaks with), or the server's deployed into the job folder, as the client's deploy mode says.
import { posix } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { Db } from '../../db/client.js';
import { appendJobLog } from '../../db/queries/jobs.js';
import type { Client } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import { sftpPutFile } from '../../infra/sftp.js';
import { shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';
import { decideClientBorg, type BorgChoice } from '../../services/client-borg.js';
import { probeBorgVersion } from '../../services/clients.js';
import { sha256File, verifyPushed } from './job-folder.js';

export interface ClientBorgDeps {
  db: Db;
  config: Config;
  log: Logger;
}

/** The borg a job runs on the client. */
export interface BorgOnClient {
  /** The borg command on the client. */
  borgCmd: string;
  /** Whether it is the server's borg, uploaded into the job folder. */
  deployed: boolean;
  version: string;
}

export function createClientBorg(deps: ClientBorgDeps) {
  const { db, config, log } = deps;

  /**
   * Versions found by `borg --version`, by client and borg path, with the identity of the file
   * that answered (device, inode, size, mtime and ctime to the nanosecond, of what the path
   * resolves to). Starting Python for `--version` costs a quarter second of every job; a stat
   * answers whether it can still be the same borg. Package managers write a new file (new inode)
   * when they upgrade. Kept per worker process; a restarted worker asks again.
   */
  const versions = new Map<string, { identity: string; version: string }>();

  /** The version of the borg at the client's configured path, null when there is none. */
  async function version(conn: SshConnection, client: Client, signal?: AbortSignal): Promise<string | null> {
    const key = `${client.id} ${client.borgPath}`;
    const r = await conn.execRaw(`p=$(command -v -- ${shellQuote(client.borgPath)}) && stat -L -c '%d:%i:%s:%y:%z' -- "$p" && printf '%s\n' "$p"`, { timeoutMs: 30_000, maxOutput: 8192, signal });
    const identity = r.code === 0 ? r.stdout.toString('utf8') : undefined;
    const cached = versions.get(key);
    if (identity && cached?.identity === identity) return cached.version;
    const found = await probeBorgVersion(conn, client.borgPath, signal);
    if (identity && found) versions.set(key, { identity, version: found });
    else versions.delete(key);
    return found;
  }

  /**
   * The borg the job will run, decided from the probed version and the client's deploy mode
   * BEFORE anything of the job goes up: an unsupported borg that may not be replaced fails here,
   * with one line, and the job folder (with its credential) never reaches the client.
   */
  function decide(client: Client, probed: string | null): BorgChoice {
    const d = decideClientBorg(client.borgDeploy, client.borgPath, probed);
    if ('fail' in d) throw ApplicationFailure.nonRetryable(d.fail, 'ClientConfigError');
    return d;
  }

  /**
   * After the job folder is up: the client's own borg as decided, or the server's uploaded into
   * the job folder `dir` and checked by its SHA-256 there.
   */
  async function ensure(conn: SshConnection, client: Client, dir: string, jobId: string, choice: BorgChoice): Promise<BorgOnClient> {
    if (choice.use === 'client') return { borgCmd: client.borgPath, deployed: false, version: choice.version };
    const local = config.borg.deployPath;
    const digest = await sha256File(local);
    const remote = posix.join(dir, 'borg');
    await sftpPutFile(await conn.sftp(), local, remote, 0o700, () => heartbeat());
    await verifyPushed(conn, new Map([[remote, digest]]));
    const deployedVersion = await probeBorgVersion(conn, remote);
    if (!deployedVersion) throw ApplicationFailure.nonRetryable(`the deployed borg (${local}) does not run on the client`, 'ClientConfigError');
    log.info({ job: jobId, version: deployedVersion }, 'borg deployed to the client');
    await appendJobLog(db, jobId, `${choice.why}; deployed borg ${deployedVersion} (sha256 ${digest.slice(0, 16)}…) for this job`);
    return { borgCmd: remote, deployed: true, version: deployedVersion };
  }

  return { version, decide, ensure };
}
