// Messages of the job workflows: what the proxy / repository service, the CLI and the web app
// send to or ask of a running job. Pure definitions, importable from anywhere.
import { defineQuery, defineSignal } from '@temporalio/workflow';

export type JobPhase = 'queued' | 'reserve' | 'prepare' | 'push' | 'run' | 'finalize' | 'cleanup' | 'done';
export type JobFinalState = 'succeeded' | 'failed' | 'violation' | 'cancelled';

/** What a client attempted that the proxy refused (DESIGN.md §4). Sent by the repository service. */
export interface ViolationSignal {
  kind: string;
  detail: string;
  /** ISO time the proxy saw it. */
  at: string;
}
export const violationSignal = defineSignal<[ViolationSignal]>('violation');

/**
 * A fault on the server's side that no retry can get over (the repository's disk is full): the
 * repository service sends it, and the job ends `failed` with `message` at once instead of
 * retrying into the same wall. Not the client's doing, so never a violation.
 */
export interface JobFaultSignal {
  kind: 'disk-full';
  /** One line for the job's error, written for the operator. */
  message: string;
  /** ISO time the service saw it. */
  at: string;
}
export const jobFaultSignal = defineSignal<[JobFaultSignal]>('jobFault');

/** A queued backup was given a slot (services/admission.ts): its workflow stops waiting. */
export const admittedSignal = defineSignal('admitted');

/** Latest progress of `borg create` (BORG_PROTOCOL.md §8.1), as heartbeated by the run activity. */
export interface BackupProgress {
  originalSize: number;
  compressedSize: number;
  deduplicatedSize: number;
  nfiles: number;
  path: string;
  /** Unix seconds of the line. */
  time: number;
  /** Restores: the bytes `borg extract` writes in all; originalSize is what it has written. */
  totalSize?: number;
}

export interface BackupStatus {
  jobId: string;
  phase: JobPhase;
  attempt: number;
  archiveName?: string;
  violation?: ViolationSignal;
  state?: JobFinalState;
  error?: string;
}
export const statusQuery = defineQuery<BackupStatus>('status');
