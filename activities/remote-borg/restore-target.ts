// A restore's target directory on the client: checked before anything of the job reaches the
// client, created when missing, and what borg restored into it compared with what the storage
// side prepared.
import { ApplicationFailure } from '@temporalio/activity';
import type { Client, RestoreSpec } from '../../db/schema.js';
import { shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';
import type { DetachedResult } from './detached-run.js';

/** What the storage side prepared for the restore (proxy/storage/api.ts PreparedRestore). */
export interface RestoreExpectation {
  items: number;
  files: number;
  bytes: number;
}

/** What a restore did, as the job's stats record it. */
export interface RestoreOutcome {
  /** Items (files, directories, links, …) borg listed as restored. */
  items: number;
  /** Regular files among them, as the archive counts them. */
  nfiles: number;
  /** The selection's regular files' sizes (hard links each counted). */
  restoredBytes: number;
  /** What borg wrote (a hard link's content once). */
  writtenBytes: number;
}

/**
 * Exit codes of the check below: the target exists and is not a directory (10), is a link to
 * nothing (11), cannot be written (12); something on the way to a missing target is not a
 * directory (13) or cannot be written to create it in (14; the nearest existing folder is printed).
 */
function targetCheckScript(target: string): string {
  return [
    `t=${shellQuote(target)}`,
    'if [ -L "$t" ] && [ ! -e "$t" ]; then exit 11; fi',
    'if [ -e "$t" ]; then [ -d "$t" ] || exit 10; { [ -w "$t" ] && [ -x "$t" ]; } || exit 12; exit 0; fi',
    'p=$t; while [ ! -e "$p" ] && [ ! -L "$p" ]; do p=$(dirname -- "$p"); done',
    'printf %s "$p"',
    '[ -d "$p" ] || exit 13',
    '{ [ -w "$p" ] && [ -x "$p" ]; } || exit 14',
    'exit 0',
  ].join('\n');
}

/**
 * Refuses, before the job touches the client, a target the client's account cannot restore
 * into. Nothing is created here: the run creates a missing target.
 */
export async function checkRestoreTarget(conn: SshConnection, client: Client, spec: RestoreSpec, signal?: AbortSignal): Promise<void> {
  // In place, borg writes into the folders the selected paths were backed up from, not into "/"
  // itself: a folder it cannot write into fails the restore with borg's own line.
  if (spec.inPlace) return;
  const r = await conn.execRaw(targetCheckScript(spec.target), { timeoutMs: 30_000, maxOutput: 8192, signal });
  const t = JSON.stringify(spec.target);
  const on = `on client ${client.name}`;
  const who = `the client's account (${client.sshUser})`;
  const nearest = JSON.stringify(r.stdout.toString('utf8'));
  const problem: Record<number, string> = {
    10: `the restore target ${t} ${on} exists and is not a directory`,
    11: `the restore target ${t} ${on} is a link to nothing`,
    12: `${who} cannot write into the restore target ${t} ${on}`,
    13: `the restore target ${t} ${on} cannot be created: ${nearest} is not a directory`,
    14: `${who} cannot create the restore target ${t} ${on}: ${nearest} is not writable`,
  };
  if (r.code === 0) return;
  const msg = problem[r.code ?? -1];
  if (msg) throw ApplicationFailure.nonRetryable(msg, 'RestoreTargetInvalid');
  throw new Error(`checking the restore target ${on} failed: ${r.stderr.toString('utf8').trim().slice(0, 300) || `exit ${r.code}`}`);
}

/** Creates a missing target, private to the client's account (an existing one is left as it is). */
export async function ensureRestoreTarget(conn: SshConnection, spec: RestoreSpec): Promise<void> {
  if (spec.inPlace) return;
  await conn.exec(['mkdir', '-p', '-m', '0700', '--', spec.target], { timeoutMs: 30_000 });
}

/**
 * borg extract exited 0: every item it set out to restore was written. The paths it listed must be
 * the items the storage side selected (both drop what --strip-components leaves empty). Its byte
 * total is borg's Item.get_size(hardlink_masters) summed: file contents and symlink targets'
 * lengths, a hard-link slave's content only where borg holds its master's chunks; the selection
 * counts the same but every hard link in full, so the total may only fall short of the
 * selection's bytes, never exceed them.
 */
export function checkRestored(r: DetachedResult, expected: RestoreExpectation): RestoreOutcome {
  const written = r.progress?.totalSize ?? 0;
  if (r.listed !== expected.items || written > expected.bytes) {
    throw ApplicationFailure.nonRetryable(
      `the restore does not match the archive: borg restored ${r.listed} items (${written} bytes written), the archive's selection holds ${expected.items} items (${expected.bytes} bytes)`,
      'RestoreMismatch',
    );
  }
  return { items: r.listed, nfiles: expected.files, restoredBytes: expected.bytes, writtenBytes: written };
}

/** A dump restore streams one regular file: refused before anything runs when the entry is something else. */
export function checkDumpEntry(entry: string, expected: RestoreExpectation): void {
  if (expected.items !== 1 || expected.files !== 1) {
    throw ApplicationFailure.nonRetryable(`${entry} is not a single file in the archive (${expected.items} items, ${expected.files} files): it is not a dump`, 'RestoreTargetInvalid');
  }
}
