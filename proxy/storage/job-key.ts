// A job's key (DESIGN.md §2.2): a key of the real key's id-hash family, with a random passphrase,
// that the client gets instead of the real key. Sealed and opened here only, under one master-key
// context, so the prepare step and the attach step cannot disagree on it.
import { randomBytes } from 'node:crypto';
import type { Db } from '../../db/client.js';
import { findJobKey, insertJobKey } from '../../db/queries/job-keys.js';
import type { JobKey } from '../../db/schema.js';
import type { MasterKey } from '../../infra/secrets.js';
import { asKeyType, createJobKey, isBlake2, isRepokey, loadKey, renderKeyfile, renderRepokey, type BorgKey, type KeyType } from '../borg/keys.js';

/** PBKDF2 rounds of the job key: its passphrase is 256 random bits, so few rounds suffice (§2.2). */
const JOB_KEY_ITERATIONS = 1000;

/** What the client gets: the key text (a key file, or a repokey that `load_key` answers) and its passphrase. */
export interface JobKeySecrets {
  keyText: string;
  passphrase: string;
}

export interface OpenedJobKey extends JobKeySecrets {
  row: JobKey;
  key: BorgKey;
}

const context = (jobId: string) => `job:${jobId}:key`;

/**
 * The job key's type, of the real key's id-hash family. A backup's is a key file (read through
 * BORG_KEY_FILE): its client encrypts what it uploads. A restore's is `authenticated` when its
 * workflow asks (JobKeyForm), a repokey that `load_key` answers: its objects travel as
 * `[type][compressed payload]` with no AES and no MAC of their own. Encrypting them to a key the receiving client holds would hide nothing from
 * it; the SSH channel protects them on the way, and the client still checks every chunk against
 * its id (the id key is the real one) and the manifest against its TAM (the archive's too from
 * borg 1.2.5 on; before, the archive is known by its id, listed in that manifest). It saves the
 * server an AES pass and a MAC per object, and the client the same (docs/performance.md,
 * "Restore: an authenticated job key").
 */
export function jobKeyType(real: BorgKey, form: JobKeyForm): KeyType {
  if (form === 'authenticated') return isBlake2(real.type) ? 0x06 : 0x07;
  return isBlake2(real.type) ? 0x04 : 0x00;
}

/**
 * `authenticated` only for a restore whose workflow asked for it: a worker that predates it
 * writes a script that refuses borg's question about an unencrypted repository (run-script.ts).
 */
export type JobKeyForm = 'keyfile' | 'authenticated';

/** Whether a job key is borg's `authenticated` type (its client reads it through load_key). */
export const isAuthenticatedJobKey = (key: BorgKey): boolean => key.type === 0x06 || key.type === 0x07;

export function openJobKey(masterKey: MasterKey, row: JobKey): OpenedJobKey {
  const secrets = JSON.parse(masterKey.openText(row.keySealed, context(row.jobId))) as JobKeySecrets;
  return { ...secrets, row, key: loadKey(secrets.keyText, secrets.passphrase, asKeyType(row.keyType)) };
}

/**
 * The job's key, created (with a fresh fake repository id) on its first round, kept after: `form`
 * applies to a new key only.
 */
export async function ensureJobKey(db: Db, masterKey: MasterKey, jobId: string, real: BorgKey, form: JobKeyForm): Promise<OpenedJobKey> {
  const existing = await findJobKey(db, jobId);
  if (existing) return openJobKey(masterKey, existing);
  const fakeRepoId = randomBytes(32);
  const jk = createJobKey(real, jobKeyType(real, form));
  const render = isRepokey(jk.key.type) ? renderRepokey : renderKeyfile;
  const secrets: JobKeySecrets = { keyText: render({ ...jk.key, repositoryId: fakeRepoId }, jk.passphrase, JOB_KEY_ITERATIONS), passphrase: jk.passphrase };
  const row = await insertJobKey(db, { jobId, keyType: jk.key.type, keySealed: masterKey.seal(JSON.stringify(secrets), context(jobId)), fakeRepoId: fakeRepoId.toString('hex') });
  return { ...secrets, row, key: loadKey(secrets.keyText, secrets.passphrase, asKeyType(row.keyType)) };
}
