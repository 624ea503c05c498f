// A job's cost bounds inside the repository service (DESIGN.md §4 invariant 11): what one job may
// cost the shared service in puts, bytes, decompressed bytes and commits. The
// session policies count here; crossing a bound is a violation with a clear reason, refused
// before the work it would cost is done (a put over the quota is never verified or stored).
// The limits come from the client's row (clients.limits over JOB_LIMIT_DEFAULTS), written into
// the job's server folder when the job is prepared, so attaching needs no database read.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jobLimitsOf, type ClientLimits, type JobLimits } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import { jobServerDir } from '../../infra/storage-layout.js';
import { PolicyViolation } from './sessions/errors.js';

export type { JobLimits };

const limitsPath = (config: Config, jobId: string) => join(jobServerDir(config, jobId), 'limits.json');

/** Written by prepareJob with the client's current limits. */
export function writeJobLimits(config: Config, jobId: string, limits: ClientLimits | null | undefined): void {
  writeFileSync(limitsPath(config, jobId), JSON.stringify(jobLimitsOf(limits)), { mode: 0o600 });
}

/** The job's limits; the defaults for a job prepared before limits existed. */
export function readJobLimits(config: Config, jobId: string): JobLimits {
  const p = limitsPath(config, jobId);
  return jobLimitsOf(existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as ClientLimits) : undefined);
}

const MINUTE = 60_000;

/**
 * The counters of one job, kept across its sessions (a restarted borg does not start from zero).
 * Every method throws the violation before the caller does the work it counts.
 */
export class JobQuota {
  puts = 0;
  uploadedBytes = 0;
  plaintextBytes = 0;
  /** Times of the commits within the last minute (at most commitsPerMinute of them). */
  private readonly commits: number[] = [];

  constructor(
    readonly limits: JobLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** A put of `bytes` as sent, before it is verified. */
  put(bytes: number): void {
    const l = this.limits;
    if (this.puts + 1 > l.putsPerJob) throw new PolicyViolation('quota-puts', `more than ${l.putsPerJob} objects put in one job`);
    if (this.uploadedBytes + bytes > l.uploadBytesPerJob) throw new PolicyViolation('quota-upload-bytes', `more than ${l.uploadBytesPerJob} bytes uploaded in one job`);
    this.puts++;
    this.uploadedBytes += bytes;
  }

  /**
   * What a verified object decompressed to. The per-object bound is enforced by the decoder
   * itself (maxPlaintext: sizes are read from the headers before anything is allocated).
   */
  plaintext(bytes: number): void {
    const l = this.limits;
    this.plaintextBytes += bytes;
    if (this.plaintextBytes > l.plaintextBytesPerJob) throw new PolicyViolation('quota-plaintext-bytes', `the job's objects decompress to more than ${l.plaintextBytesPerJob} bytes`);
  }

  /** A commit, before it is carried out. */
  commit(): void {
    const now = this.now();
    while (this.commits.length && this.commits[0]! <= now - MINUTE) this.commits.shift();
    const l = this.limits;
    if (this.commits.length >= l.commitsPerMinute) throw new PolicyViolation('quota-commits', `more than ${l.commitsPerMinute} commits within a minute`);
    this.commits.push(now);
  }
}

/** The violation for an object whose plaintext is over the per-object bound (the decoder's refusal). */
export function oversizedObject(idHex: string, limit: number, detail: string): PolicyViolation {
  return new PolicyViolation('quota-object-size', `put ${idHex}: decompresses to more than ${limit} bytes (${detail})`);
}
