// sshd's AuthorizedKeysCommand, answered by the repository service: an offered key is a login
// only while it is the live credential of a running job, and then only for the forced command.
//
// sshd asks this for a mere offer of a key (the publickey query, no signature) exactly as for a
// signed attempt, and verifies a signature only for a key we authorize. So nothing here counts as
// anyone's violation: a job's credential kept past its job (revoked, expired, job ended) is
// authorized for a forced command that only reports the reuse (`--reused`), which runs once sshd
// has verified the signature — proof that the caller holds the private key. Whoever merely knows
// a public key can no longer end its job.
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../db/client.js';
import { findCredentialByFingerprint } from '../../db/queries/job-credentials.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';

export interface AuthorizedKeysDeps {
  db: Db;
  config: Config;
  log: Logger;
  /**
   * How sshd runs the forced command: node + the compiled proxy/session/main.js, inside
   * bin/borgcube-sandbox (no network, no other process, nothing but the storage socket's folder).
   */
  proxyCommand: { sandbox: string; node: string; script: string };
  /** How long a refused key's answer is held back (default REFUSED_KEY_DELAY_MS). */
  refusedDelayMs?: number;
}

/**
 * A refused key is answered this late. sshd handles one key at a time per connection and keeps at
 * most PerSourceMaxStartups (infra/sshd.ts) unauthenticated connections per source address, so an
 * address gets at most that many refused keys per this delay; a live credential is never delayed.
 */
export const REFUSED_KEY_DELAY_MS = 2000;

/** authorized_keys lines for an offered key (by its SHA256 fingerprint): a forced command, or nothing. */
export async function authorizedKeys(deps: AuthorizedKeysDeps, user: string, fingerprint: string): Promise<string[]> {
  const { db, config, log } = deps;
  const refuse = async () => {
    await sleep(deps.refusedDelayMs ?? REFUSED_KEY_DELAY_MS);
    return [];
  };
  if (user !== config.accounts.proxy || !/^SHA256:[A-Za-z0-9+/]{43}$/.test(fingerprint)) return refuse();
  const row = await findCredentialByFingerprint(db, fingerprint);
  if (!row) return refuse();
  const { cred } = row;
  const [keyType, keyB64] = cred.publicKey.split(' ') as [string, string | undefined];
  if (!keyB64 || !/^[A-Za-z0-9@.-]{1,64}$/.test(keyType) || !/^[A-Za-z0-9+/=]{1,8192}$/.test(keyB64)) return refuse();
  const live = !cred.revokedAt && cred.expiresAt >= new Date() && row.jobState === 'running';
  if (!live) log.info({ job: cred.jobId, fingerprint }, 'a credential of an ended or revoked round was offered; it can only report itself');
  const { sandbox, node, script } = deps.proxyCommand;
  const runDir = dirname(config.paths.storageSocket);
  const command = `${sandbox} ${runDir} ${node} ${script} --socket ${config.paths.storageSocket} --job ${cred.jobId}${live ? '' : ' --reused'}`;
  if (!/^[A-Za-z0-9_./ -]+$/.test(command)) throw new Error('proxy command contains characters unsafe for authorized_keys');
  const line = `restrict,command="${command}" ${keyType} ${keyB64}`;
  return live ? [line] : [line].concat(await refuse());
}
