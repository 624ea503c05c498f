// A restore's target directory on the client: checked before anything of the job reaches the
// client, created when missing, and what borg restored into it compared with what the storage
// side prepared.
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { Client, RestoreSpec } from '../../db/schema.js';
import { shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';

/** What the storage side prepared for the restore (proxy/storage/api.ts PreparedRestore). */
export interface RestoreExpectation {
  items: number;
  files: number;
  /**
   * Distinct paths of the selection's directories and of everything else: absent from what a
   * storage host prepared before it counted them (then borg lists).
   */
  dirs?: number;
  nondirs?: number;
  bytes: number;
}

/** What a restore did, as the job's stats record it. */
export interface RestoreOutcome {
  /** Items (files, directories, links, …) restored: as borg listed them, or the selection's when counted on disk. */
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

/**
 * How a restore's result is checked: by borg's `--list` of every path it restored (in place, into
 * a folder that held something already, with --strip-components, for a dump), or — into an empty
 * folder — by counting what is in it afterwards. `--list` is one JSON log record per item on the
 * client's own core: ~20% of a whole restore's time (docs/performance.md, "Restore: … `--list`").
 */
export type RestoreCheck = 'list' | 'count';

/** The job folder's record of how many folders of the target's path the restore made. */
export const MADE_TARGET = 'restore-made';

/**
 * Creates a missing target, private to the client's account (an existing one is left as it is),
 * and decides how the restore is checked (`counted`: the storage side gives the selection's
 * distinct counts of directories and the rest, which a count on disk is checked against). The decision is kept in the job folder: a run activity
 * retried after borg started (the target no longer empty) checks the way the first attempt chose.
 */
export async function prepareRestoreTarget(conn: SshConnection, spec: RestoreSpec, jobDir: string, counted: boolean, signal?: AbortSignal): Promise<RestoreCheck> {
  if (spec.inPlace || spec.dump) return 'list';
  // With --strip-components two archived paths may become one on disk: only borg's list tells.
  const mayCount = spec.stripComponents === 0 && counted;
  const script = [
    `t=${shellQuote(spec.target)}`,
    `f=${shellQuote(posix.join(jobDir, 'restore-check'))}`,
    `m=${shellQuote(posix.join(jobDir, MADE_TARGET))}`,
    // The job folder pushJobFolder made: gone, the job's round starts over (JobFolderMissing).
    '[ -d "$(dirname -- "$f")" ] || exit 4',
    // How many folders of the target's path this job makes (the first attempt's word stands):
    // a failed restore removes them again while they are empty (job-folder.ts removeScript).
    'if [ ! -f "$m" ]; then',
    '  n=0; p=$t; while [ ! -e "$p" ] && [ ! -L "$p" ]; do n=$((n+1)); p=$(dirname -- "$p"); done',
    '  printf %s "$n" > "$m.tmp" && mv -f -- "$m.tmp" "$m" || exit 1',
    'fi',
    'mkdir -p -m 0700 -- "$t" || exit 1',
    // Empty and readable: what is in it afterwards is what borg restored. ("$t/." also walks a
    // target that is a link to a folder; find stops at the first entry, ls would sort them all.)
    'if [ ! -f "$f" ]; then',
    '  c=list',
    `  if ${mayCount ? 'true' : 'false'} && [ -r "$t" ] && [ -x "$t" ] && command -v find > /dev/null; then`,
    '    n=$(LC_ALL=C find "$t/." -mindepth 1 -maxdepth 1 -print 2>/dev/null | head -c 1 | wc -c)',
    '    [ $n -eq 0 ] && c=count',
    '  fi',
    '  printf %s "$c" > "$f.tmp" && mv -f -- "$f.tmp" "$f" || exit 1',
    'fi',
    'cat -- "$f"',
  ].join('\n');
  const r = await conn.execRaw(script, { timeoutMs: 120_000, maxOutput: 64, signal });
  if (r.code === 4) throw ApplicationFailure.nonRetryable(`the job folder ${jobDir} is gone from the client`, 'JobFolderMissing');
  const out = r.stdout.toString('utf8');
  if (r.code !== 0 || (out !== 'list' && out !== 'count')) throw new Error(`preparing the restore target failed: ${r.stderr.toString('utf8').trim().slice(0, 300) || `exit ${r.code}`}`);
  return out;
}

/** What is in a restore's target afterwards: entries that are not directories, and directories. */
export interface TargetCount {
  nondirs: number;
  dirs: number;
  /** Some folder below the target cannot be read by the client's account: what is below it was not counted. */
  unreadable: boolean;
}

/**
 * Counts the target's entries below it (a character per entry, or a NUL per path: any byte may be
 * in a name). Exit codes: 3 when find failed for another reason than a folder it may not read.
 */
export async function countRestoreTarget(conn: SshConnection, spec: RestoreSpec, jobDir: string, signal?: AbortSignal): Promise<TargetCount> {
  const file = (name: string) => shellQuote(posix.join(jobDir, name));
  const script = [
    `t=${shellQuote(spec.target)}; x=${file('count-errors')}; s=${file('count-status')}; o=${file('count')}`,
    'e=0',
    // walk FILTER ARGS…: find below the target with ARGS, its output through FILTER into $o. find's
    // status goes through a file; what it could not read shows in its error output.
    'walk() {',
    '  f=$1; shift',
    `  { LC_ALL=C find "$t/." -mindepth 1 "$@" 2> "$x"; echo $? > "$s"; } | "$f" > "$o" || exit 3`,
    '  if [ "$(cat "$s")" != 0 ]; then',
    // Failed without a word (killed, say), or for another reason than a folder it may not read.
    '    [ -s "$x" ] || exit 3',
    '    grep -qv "Permission denied" "$x" && exit 3',
    '    e=1',
    '  fi',
    '}',
    'lines_and_bytes() { wc -lc; }',
    "nuls() { tr -dc '\\000' | wc -c; }",
    // GNU find: one walk, a newline per directory and a letter per other entry (a walk of every
    // path's name costs twice that). BusyBox has no -printf: two walks, their paths' NULs counted.
    `if LC_ALL=C find "$t/." -maxdepth 0 -printf '' 2> /dev/null; then`,
    "  walk lines_and_bytes \\( -type d -printf '\\n' \\) -o -printf n",
    '  read -r d c < "$o"; n=$((c - d))',
    'else',
    '  walk nuls ! -type d -print0; n=$(cat "$o")',
    '  walk nuls -type d -print0; d=$(cat "$o")',
    'fi',
    'echo $n $d $e',
  ].join('\n');
  const r = await conn.execRaw(script, { timeoutMs: 3_600_000, maxOutput: 256, signal });
  const m = /^\s*(\d+)\s+(\d+)\s+([01])\s*$/.exec(r.stdout.toString('utf8'));
  if (r.code !== 0 || !m) throw new Error(`counting what was restored into ${JSON.stringify(spec.target)} failed: ${r.stderr.toString('utf8').trim().slice(0, 300) || `exit ${r.code}`}`);
  return { nondirs: Number(m[1]), dirs: Number(m[2]), unreadable: m[3] === '1' };
}

/**
 * borg extract exited 0: every item it set out to restore was written. The paths it listed must be
 * the items the storage side selected (both drop what --strip-components leaves empty). Its byte
 * total is borg's Item.get_size(hardlink_masters) summed: file contents and symlink targets'
 * lengths, a hard-link slave's content only where borg holds its master's chunks; the selection
 * counts the same but every hard link in full, so the total may only fall short of the
 * selection's bytes, never exceed them.
 */
/** What borg did: paths it listed (0 without `--list`), bytes it wrote as its progress counted them. */
export interface Extracted {
  listed: number;
  writtenBytes: number;
}

export function checkRestored(r: Extracted, expected: RestoreExpectation): RestoreOutcome {
  const written = r.writtenBytes;
  if (r.listed !== expected.items || written > expected.bytes) {
    throw ApplicationFailure.nonRetryable(
      `the restore does not match the archive: borg restored ${r.listed} items (${written} bytes written), the archive's selection holds ${expected.items} items (${expected.bytes} bytes)`,
      'RestoreMismatch',
    );
  }
  return { items: r.listed, nfiles: expected.files, restoredBytes: expected.bytes, writtenBytes: written };
}

/**
 * The same check for a restore into an empty folder, from what is in it afterwards: exactly the
 * selection's non-directories, and at least its directories (borg also creates the missing
 * parents of the selected paths, e.g. `home` of an archive of `/home/u/data`), each path once
 * (an archive of overlapping paths holds some items twice; borg writes them twice). A folder the
 * client's account cannot read (restored with such a mode) hides what is below it: then only
 * "at most" holds, and the job's log says so.
 */
export function checkCounted(r: Extracted, expected: RestoreExpectation & { dirs: number; nondirs: number }, found: TargetCount): RestoreOutcome {
  const written = r.writtenBytes;
  const bad = found.unreadable ? found.nondirs > expected.nondirs : found.nondirs !== expected.nondirs || found.dirs < expected.dirs;
  if (bad || written > expected.bytes) {
    throw ApplicationFailure.nonRetryable(
      `the restore does not match the archive: the target holds ${found.nondirs} non-directories (files, links, …) and ${found.dirs} directories (${written} bytes written), the archive's selection holds ${expected.nondirs} and ${expected.dirs} (${expected.bytes} bytes)`,
      'RestoreMismatch',
    );
  }
  return { items: expected.items, nfiles: expected.files, restoredBytes: expected.bytes, writtenBytes: written };
}

/** A dump restore streams one regular file: refused before anything runs when the entry is something else. */
export function checkDumpEntry(entry: string, expected: RestoreExpectation): void {
  if (expected.items !== 1 || expected.files !== 1) {
    throw ApplicationFailure.nonRetryable(`${entry} is not a single file in the archive (${expected.items} items, ${expected.files} files): it is not a dump`, 'RestoreTargetInvalid');
  }
}
