// A job's key (DESIGN.md §2.2): a key file of the real key's id-hash family, with a random
// passphrase, that the client gets instead of the real key. Sealed and opened here only, under
// one master-key context, so the prepare step and the attach step cannot disagree on it.
import { randomBytes } from 'node:crypto';
import type { Db } from '../../db/client.js';
import { findJobKey, insertJobKey } from '../../db/queries/job-keys.js';
import type { JobKey } from '../../db/schema.js';
import type { MasterKey } from '../../infra/secrets.js';
import { asKeyType, createJobKey, isBlake2, loadKey, renderKeyfile, type BorgKey } from '../borg/keys.js';

/** PBKDF2 rounds of the job key: its passphrase is 256 random bits, so few rounds suffice (§2.2). */
const JOB_KEY_ITERATIONS = 1000;

/** What the client gets: the key file text and its passphrase. */
export interface JobKeySecrets {
  keyText: string;
  passphrase: string;
}

export interface OpenedJobKey extends JobKeySecrets {
  row: JobKey;
  key: BorgKey;
}

const context = (jobId: string) => `job:${jobId}:key`;

/** The job key's type: a key file (read through BORG_KEY_FILE) of the real key's id-hash family. */
export function jobKeyType(real: BorgKey): 0x00 | 0x04 {
  return isBlake2(real.type) ? 0x04 : 0x00;
}

export function openJobKey(masterKey: MasterKey, row: JobKey): OpenedJobKey {
  const secrets = JSON.parse(masterKey.openText(row.keySealed, context(row.jobId))) as JobKeySecrets;
  return { ...secrets, row, key: loadKey(secrets.keyText, secrets.passphrase, asKeyType(row.keyType)) };
}

/** The job's key, created (with a fresh fake repository id) on its first round, kept after. */
export async function ensureJobKey(db: Db, masterKey: MasterKey, jobId: string, real: BorgKey): Promise<OpenedJobKey> {
  const existing = await findJobKey(db, jobId);
  if (existing) return openJobKey(masterKey, existing);
  const fakeRepoId = randomBytes(32);
  const jk = createJobKey(real, jobKeyType(real));
  const secrets: JobKeySecrets = { keyText: renderKeyfile({ ...jk.key, repositoryId: fakeRepoId }, jk.passphrase, JOB_KEY_ITERATIONS), passphrase: jk.passphrase };
  const row = await insertJobKey(db, { jobId, keyType: jk.key.type, keySealed: masterKey.seal(JSON.stringify(secrets), context(jobId)), fakeRepoId: fakeRepoId.toString('hex') });
  return { ...secrets, row, key: loadKey(secrets.keyText, secrets.passphrase, asKeyType(row.keyType)) };
}
