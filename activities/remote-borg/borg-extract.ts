// `borg extract` as runDetached runs it: a restore of the job's archive (all of it or some paths)
// through BorgCube's proxy, in the target directory on the client (DESIGN.md §3, restore).
import { z } from 'zod';
import type { Job, RestoreSpec } from '../../db/schema.js';
import { shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';
import { MAX_MESSAGE, parseBorgLine, type BorgLine } from '../borg-output.js';
import type { DetachedBorg } from './detached-run.js';
import { restoreDumpOutcome, restoreDumpParts } from './dump-streams.js';
import type { RestoreCheck } from './restore-target.js';

/**
 * borg extract's argv for the job, `borgCmd` being the borg on the client and `archiveName` the
 * archive as the job's manifest lists it, `repoUrl` the job's repository URL on its storage host. Every path goes as a `pp:` pattern: borg reads its path
 * arguments as patterns whose style a prefix such as `re:` or `sh:` could change (borg
 * helpers/patterns.py parse_pattern), and `pp:` keeps each one a literal path prefix — the
 * selection the storage side serves chunks for. Nor can a path then pass for an option.
 */
export function borgExtractArgv(repoUrl: string, spec: RestoreSpec, archiveName: string, borgCmd: string, check: RestoreCheck = 'list'): string[] {
  const location = `${repoUrl}::${archiveName}`;
  // A dump entry goes to stdout, into the load command (dump-streams.ts).
  if (spec.dump) return [borgCmd, 'extract', '--log-json', '--progress', '--list', '--stdout', location, `pp:${spec.dump.entry}`];
  const strip = spec.stripComponents > 0 ? ['--strip-components', String(spec.stripComponents)] : [];
  // --list only where the restore is checked by it (restore-target.ts RestoreCheck).
  const list = check === 'list' ? ['--list'] : [];
  // --sparse: an all-zero chunk becomes a hole again, as the file most likely was (borg create
  // stores holes as zeros); the content is the same either way.
  return [borgCmd, 'extract', '--log-json', '--progress', ...list, '--sparse', ...strip, location, ...spec.paths.map((p) => `pp:${p}`)];
}

const finite = z.number().finite().nonnegative();
/** borg's ProgressIndicatorPercent in JSON (borg helpers/progress.py output_json). */
const extractProgress = z.object({
  type: z.literal('progress_percent'),
  msgid: z.string().max(200).nullable().optional(),
  finished: z.boolean().optional(),
  current: finite.optional(),
  total: finite.optional(),
  info: z.array(z.string()).max(4).nullable().optional(),
  time: z.number().finite(),
});
/** `--list` prints each path through the logger `borg.output.list` (archiver.py do_extract). */
const listedPath = z.object({ type: z.literal('log_message'), name: z.literal('borg.output.list'), message: z.string() });

/**
 * borg's question about an unencrypted repository it has not seen, and the answer the job's script
 * gives on purpose (the job key is authenticated: run-script.ts): nothing for the job's log.
 */
const unencryptedQuestion = z.object({ type: z.enum(['question_prompt', 'question_env_answer']), msgid: z.literal('BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK') });

/** One stderr line of `borg extract --log-json --progress --list` → a typed event; never throws. */
export function parseExtractLine(raw: string, truncated = false): BorgLine | null {
  if (!truncated && raw.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      json = undefined;
    }
    if (unencryptedQuestion.safeParse(json).success) return null;
    const listed = listedPath.safeParse(json);
    if (listed.success) return { kind: 'listed', path: cut(listed.data.message) };
    const p = extractProgress.safeParse(json);
    if (p.success) {
      const v = p.data;
      // Setting the directories' permissions at the end: nothing worth showing.
      if (v.msgid !== 'extract') return null;
      // Before the total is known borg says what it does ("Calculating total archive size…"): a log line.
      if (!v.finished && v.total === 0 && v.current === 0) return parseBorgLine(raw, truncated);
      if (v.finished || v.current === undefined || v.total === undefined) return { kind: 'progress-finished', time: v.time };
      return { kind: 'progress', originalSize: v.current, compressedSize: 0, deduplicatedSize: 0, nfiles: 0, path: cut(v.info?.[0] ?? ''), time: v.time, totalSize: v.total };
    }
  }
  return parseBorgLine(raw, truncated);
}

const cut = (s: string) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}…` : s);

/** The line a restore fails with when its target's file system on the client filled up. */
export function restoreTargetFullMessage(target: string): string {
  return `the disk of the restore target ${target} on the client is full (No space left on device); the files restored there so far are incomplete: free space there or restore elsewhere, and run the job again`;
}

export function borgExtract(repoUrl: string, job: Job, archiveName: string, borgCmd: string, check: RestoreCheck = 'list', authenticatedKey = false): DetachedBorg {
  const spec = job.restore;
  if (!spec) throw new Error(`job ${job.id} is not a restore`);
  return {
    name: 'borg extract',
    jobName: 'restore',
    argv: borgExtractArgv(repoUrl, spec, archiveName, borgCmd, check),
    authenticatedKey,
    ...(spec.dump ? { parts: restoreDumpParts(spec.dump), toolOutcome: (read) => restoreDumpOutcome(spec.dump!, read) } : { cwd: spec.target }),
    // Without --list borg says only bytes: the items so far are counted in the (empty) target.
    ...(check === 'count' && !spec.dump ? { countSoFar: (conn: SshConnection, signal: AbortSignal) => countSoFar(conn, spec.target, signal) } : {}),
    parseLine: parseExtractLine,
    // 1 is "finished with warnings": a file that could not be written or an attribute that could
    // not be set. A restore that is not what the archive holds has failed.
    succeeded: (rc) => (rc === 0 ? 'borg extract finished' : undefined),
    // borg extract goes on after a file it could not write; the restore fails once, for good.
    ...(spec.dump ? {} : { diskFull: restoreTargetFullMessage(spec.target) }),
  };
}

/**
 * Entries below `target` now (NUL-separated: any byte may be in a name), folders borg made above
 * the selected paths included; undefined when the walk did not finish (it stops after 20 s where
 * `timeout` exists, so that an abandoned walk does not go on on the client) or could not run.
 */
export async function countSoFar(conn: SshConnection, target: string, signal: AbortSignal): Promise<number | undefined> {
  const script = [
    // Tried, not looked up: BusyBox before 1.30 wants `timeout -t 20`.
    "timeout 1 true > /dev/null 2>&1 && t='timeout 20' || t=",
    // find's status goes out first on fd 3 (1: a folder it may not read, still a fair count), then the count.
    `{ { LC_ALL=C $t find ${shellQuote(`${target}/.`)} -mindepth 1 -print0 2> /dev/null; echo $? >&3; } | tr -dc '\\000' | wc -c; } 3>&1`,
  ].join('\n');
  const r = await conn.execRaw(script, { timeoutMs: 30_000, maxOutput: 64, signal });
  const m = /^(\d+)\n\s*(\d+)\s*$/.exec(r.stdout.toString('utf8'));
  return r.code === 0 && m && (m[1] === '0' || m[1] === '1') ? Number(m[2]) : undefined;
}
