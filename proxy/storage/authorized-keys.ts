// sshd's AuthorizedKeysCommand, answered by the repository service: an offered key is a login
// only while it is the live credential of a running job, and then only for the forced command.
import type { Db } from '../../db/client.js';
import { findCredentialByFingerprint } from '../../db/queries/job-credentials.js';
import { insertViolation } from '../../db/queries/jobs.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import { fingerprintOfBlob } from '../../infra/ssh.js';
import type { Violations } from './violations.js';

export interface AuthorizedKeysDeps {
  db: Db;
  config: Config;
  log: Logger;
  /** How sshd runs the forced command: node + the compiled proxy/session/main.js. */
  proxyCommand: { node: string; script: string };
}

/** authorized_keys lines for an offered key: the job's forced proxy command, or nothing. */
export async function authorizedKeys(deps: AuthorizedKeysDeps, violations: Violations, user: string, keyType: string, keyB64: string): Promise<string[]> {
  const { db, config, log } = deps;
  if (user !== config.accounts.proxy || !/^[A-Za-z0-9@.-]{1,64}$/.test(keyType) || !/^[A-Za-z0-9+/=]{1,8192}$/.test(keyB64)) return [];
  const fingerprint = fingerprintOfBlob(Buffer.from(keyB64, 'base64'));
  const row = await findCredentialByFingerprint(db, fingerprint);
  if (!row) return [];
  const { cred } = row;
  if (cred.revokedAt || cred.expiresAt < new Date() || row.jobState !== 'running') {
    log.warn({ job: cred.jobId, fingerprint }, 'a credential was offered after its job ended');
    await insertViolation(db, {
      jobId: cred.jobId,
      clientId: cred.clientId,
      repositoryId: row.repositoryId,
      kind: 'credential-reuse',
      detail: `the SSH credential of job ${cred.jobId} was offered after the job ${row.jobState === 'running' ? 'revoked it' : `ended (${row.jobState})`}; login refused`,
    });
    // A job that is still running gets the signal; an ended workflow cannot receive one.
    if (row.jobState === 'running') await violations.signal(cred.jobId, 'credential-reuse', 'revoked credential offered again');
    return [];
  }
  const { node, script } = deps.proxyCommand;
  const command = `${node} ${script} --socket ${config.paths.storageSocket} --job ${cred.jobId}`;
  if (!/^[A-Za-z0-9_./ -]+$/.test(command)) throw new Error('proxy command contains characters unsafe for authorized_keys');
  return [`restrict,command="${command}" ${keyType} ${keyB64}`];
}
