// A job's SSH credentials: issued when the job is prepared, checked against sshd's ExposeAuthInfo
// when a session attaches (the key that authenticated must be the job's live credential).
import type { Db } from '../../db/client.js';
import { insertJobCredential, listJobCredentials } from '../../db/queries/job-credentials.js';
import { findJob, revokeJobCredentials } from '../../db/queries/jobs.js';
import { generateEd25519 } from '../../infra/ssh-keygen.js';
import { fingerprintOfBlob, fingerprintOfPublicKey, normalizeKey } from '../../infra/ssh.js';

/** How long a job credential may live at most, whatever happens to the job. */
const CREDENTIAL_TTL_MS = 48 * 3600 * 1000;

/** Fingerprints of the public keys listed in sshd's ExposeAuthInfo file ("publickey TYPE B64"). */
export function authInfoFingerprints(authInfo: string): string[] {
  const out: string[] = [];
  for (const line of authInfo.split('\n')) {
    const m = /^publickey \S+ ([A-Za-z0-9+/=]+)/.exec(line.trim());
    if (m) out.push(fingerprintOfBlob(Buffer.from(m[1]!, 'base64')));
  }
  return out;
}

/** Whether sshd's auth info shows a live credential of this running job (attach's first check). */
export async function authenticatedFor(db: Db, jobId: string, authInfo: string): Promise<boolean> {
  const job = await findJob(db, jobId);
  if (!job || job.state !== 'running') return false;
  const creds = await listJobCredentials(db, job.id);
  const offered = authInfoFingerprints(authInfo);
  return creds.some((c) => offered.includes(c.fingerprint) && !c.revokedAt && c.expiresAt >= new Date());
}

/**
 * Whether sshd's auth info shows a credential of this job that is no longer live (revoked,
 * expired, or its job ended): what a `--reused` forced command reports.
 */
export async function reusedCredentialOf(db: Db, jobId: string, authInfo: string): Promise<boolean> {
  const job = await findJob(db, jobId);
  if (!job) return false;
  const offered = authInfoFingerprints(authInfo);
  const creds = (await listJobCredentials(db, job.id)).filter((c) => offered.includes(c.fingerprint));
  return creds.length > 0 && creds.every((c) => c.revokedAt || c.expiresAt < new Date() || job.state !== 'running');
}

/** A fresh key pair for this round of the job; earlier ones stop working. Returns the private key. */
export async function issueJobCredential(db: Db, jobId: string, clientId: string): Promise<string> {
  const pair = generateEd25519(`borgcube-job-${jobId}`);
  const publicKey = normalizeKey(pair.public);
  await revokeJobCredentials(db, jobId);
  await insertJobCredential(db, { jobId, clientId, publicKey, fingerprint: fingerprintOfPublicKey(publicKey), expiresAt: new Date(Date.now() + CREDENTIAL_TTL_MS) });
  return pair.private;
}
