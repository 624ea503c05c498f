// Runs a backup's hooks on the client (services/hooks.ts holds what they are): each one through
// the job's SSH connection as `sh -c <command>` in a session of its own, with its output streamed
// into the job's log (bounded) and a timeout after which its whole process group is killed.
//
// A hook runs in the foreground of an exec channel, not detached like borg: hooks are short, and
// a worker that dies mid-hook means the activity's retry runs the hook again (see the README's
// "Hooks"). The wrapper records the hook's process group in ~/.borgcube/hooks/<job>.pid, so that
// the retry first kills what the dead attempt left running, and so that a timeout can kill it.
import { posix } from 'node:path';
import { CancelledFailure } from '@temporalio/activity';
import type { Db } from '../../db/client.js';
import { findClientById } from '../../db/queries/clients.js';
import { findJob } from '../../db/queries/jobs.js';
import { findPolicyById } from '../../db/queries/policies.js';
import { jobLimitsOf, type Hook } from '../../db/schema.js';
import { shellQuote } from '../../infra/shell-quote.js';
import type { SshConnection } from '../../infra/ssh.js';
import { backupHooks, hookTimeoutOf, type HookPhase } from '../../services/hooks.js';
import { LineSplitter } from '../borg-output.js';
import { JobLog, type JobLogDeps, type LogLimits } from './job-log.js';
import { PROCESS_IDENTITY } from './run-script.js';

/** Lines and bytes of one hook's output kept in the job's log; the rest is counted in one line. */
export const HOOK_OUTPUT_LINES = 200;
export const HOOK_OUTPUT_BYTES = 64 * 1024;
/** A longer line is cut (and marked) before it reaches the log. */
const HOOK_LINE_BYTES = 4096;
/** After a kill, how long the exec channel may take to close before the server stops waiting. */
const CLOSE_GRACE_MS = 15_000;

const phaseName: Record<HookPhase, string> = { before: 'before', onFailure: 'on-failure', after: 'after' };

/** Where the running hook's process group is recorded on the client, relative to the home. */
export const hookPidFile = (jobId: string) => `.borgcube/hooks/${jobId}.pid`;

/** The hooks one backup job runs, loaded from its client and policy rows. */
export async function loadJobHooks(db: Db, jobId: string) {
  const job = await findJob(db, jobId);
  const client = job?.clientId ? await findClientById(db, job.clientId) : undefined;
  if (!job || !client) return undefined;
  const policy = job.policyId ? await findPolicyById(db, job.policyId) : undefined;
  return { hooks: backupHooks(client.hooks, policy?.hooks), limits: jobLimitsOf(client.limits) };
}

/**
 * The script the client's login shell runs for one hook. The command is one single-quoted
 * argument of `sh -c`: the login shell removes the quotes, `sh` runs it as typed.
 * `setsid` makes the hook the leader of a new session and process group (a background job of a
 * non-interactive shell is no group leader, so setsid does not fork and `$!` is that leader):
 * killing the group reaches everything it started, and whatever it leaves behind when it exits
 * is killed too, so no hook process outlives its step.
 */
export function hookScript(o: { home: string; jobId: string; phase: HookPhase; state?: string; command: string }): string {
  const q = shellQuote;
  const pf = posix.join(o.home, hookPidFile(o.jobId));
  return [
    PROCESS_IDENTITY,
    `cd ${q(o.home)} || exit 97`,
    `pf=${q(pf)}`,
    `(umask 077 && mkdir -p ${q(posix.dirname(pf))}) || exit 97`,
    // An attempt whose worker died may have left its hook running: that one goes first.
    'if read -r p s 2>/dev/null < "$pf" && alive "$p" "$s"; then kill -KILL "-$p" 2>/dev/null; echo "borgcube: stopped the hook an earlier attempt left running"; fi',
    `export BORGCUBE_JOB_ID=${q(o.jobId)} BORGCUBE_HOOK=${q(phaseName[o.phase])}`,
    o.state ? `export BORGCUBE_JOB_STATE=${q(o.state)}` : 'unset BORGCUBE_JOB_STATE',
    `setsid sh -c ${q(o.command)} < /dev/null 2>&1 &`,
    'p=$!',
    '(umask 077 && echo "$p $(started "$p")" > "$pf")',
    'wait "$p"; rc=$?',
    'kill -KILL "-$p" 2> /dev/null',
    'rm -f "$pf"',
    'exit $rc',
  ].join('\n');
}

/** Stops a running hook: SIGTERM to its process group, SIGKILL after five seconds. The wrapper then kills what is left. */
export function killHookScript(home: string, jobId: string): string {
  return [
    PROCESS_IDENTITY,
    `pf=${shellQuote(posix.join(home, hookPidFile(jobId)))}`,
    // The wrapper writes it right after starting the hook: give a just-started one a moment.
    'i=0; while [ ! -s "$pf" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done',
    'read -r p s 2>/dev/null < "$pf" || exit 0',
    'alive "$p" "$s" || exit 0',
    'kill -TERM "-$p" 2>/dev/null',
    'i=0; while alive "$p" "$s" && [ $i -lt 25 ]; do sleep 0.2; i=$((i+1)); done',
    'kill -KILL "-$p" 2>/dev/null; exit 0',
  ].join('\n');
}

/**
 * One hook's output on its way into the job's log: the first HOOK_OUTPUT_LINES lines or
 * HOOK_OUTPUT_BYTES bytes, then only counted (a hook printing 100 MB costs the worker a running
 * count and a small tail, and the log one line saying what was dropped).
 */
export class HookOutput {
  private readonly splitter = new LineSplitter(HOOK_LINE_BYTES);
  private keptLines = 0;
  private keptBytes = 0;
  private total = 0;
  private full = false;
  /** The last bytes seen, for the last line of a failing hook's message. */
  private tail = Buffer.alloc(0);
  private pending: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  constructor(
    private readonly store: (line: string) => Promise<void>,
    private readonly limits = { lines: HOOK_OUTPUT_LINES, bytes: HOOK_OUTPUT_BYTES },
  ) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.tail = Buffer.concat([this.tail, chunk.subarray(Math.max(0, chunk.length - 512))]).subarray(-512);
    if (this.full) return;
    for (const l of this.splitter.push(chunk)) this.take(l.line, l.truncated);
  }

  private take(line: string, truncated: boolean): void {
    if (this.full) return;
    const bytes = Buffer.byteLength(line) + 1;
    if (this.keptLines >= this.limits.lines || this.keptBytes + bytes > this.limits.bytes) {
      this.full = true;
      return;
    }
    this.keptLines++;
    this.keptBytes += bytes;
    const text = truncated ? `${line} [line truncated]` : line;
    this.pending = this.pending.then(() => this.store(text)).catch((err: unknown) => void (this.failure ??= err instanceof Error ? err : new Error('storing a hook line failed')));
  }

  /** Stores what is left; returns the line saying what was dropped, if anything was. */
  async end(): Promise<string | undefined> {
    if (!this.full) for (const l of this.splitter.flush()) this.take(l.line, l.truncated);
    await this.pending;
    if (this.failure) throw this.failure;
    const dropped = this.total - this.keptBytes;
    if (!this.full || dropped <= 0) return undefined;
    return `${this.total} bytes of output in all: only the first ${this.keptLines} lines are kept, ${dropped} more bytes were dropped`;
  }

  /** The last non-empty line printed (cut to 300 characters), whether it was kept or not. */
  lastLine(): string | undefined {
    const lines = this.tail.toString('utf8').split('\n').map((l) => l.trim());
    const last = lines.filter(Boolean).at(-1);
    return last === undefined ? undefined : last.slice(0, 300);
  }
}

/** The command as the log's lines quote it: on one line, at most 120 characters. */
export function commandPreview(command: string): string {
  const one = command.replace(/\s*\n\s*/g, ' ⏎ ').trim();
  return JSON.stringify(one.length > 120 ? `${one.slice(0, 117)}...` : one);
}

export interface HookRun {
  conn: SshConnection;
  jobId: string;
  home: string;
  /** The job's state, for the on-failure and after hooks (BORGCUBE_JOB_STATE). */
  state?: string;
  limits: LogLimits;
  signal: AbortSignal;
  beat(): void;
}

/**
 * Runs one phase's hooks in order. A failing `before` hook stops the phase (the job fails with
 * it); the others all run whatever the one before them did, and their failures are returned.
 */
export async function runHookPhase(deps: JobLogDeps & { db: Db }, run: HookRun, phase: HookPhase, hooks: Hook[]): Promise<string[]> {
  const log = await JobLog.resume(deps, run.jobId, run.limits);
  const failures: string[] = [];
  try {
    for (const [i, hook] of hooks.entries()) {
      const label = `${phaseName[phase]} hook${hooks.length > 1 ? ` ${i + 1}/${hooks.length}` : ''}`;
      const failure = await runHook(log, run, phase, hook, label);
      if (failure === undefined) continue;
      failures.push(failure);
      if (phase === 'before') break;
    }
  } finally {
    await log.flush();
  }
  return failures;
}

async function runHook(log: JobLog, run: HookRun, phase: HookPhase, hook: Hook, label: string): Promise<string | undefined> {
  const { conn, signal } = run;
  const timeoutSeconds = hookTimeoutOf(hook);
  await log.own(`${label} started: ${commandPreview(hook.command)} (timeout ${timeoutSeconds} s)`);
  const out = new HookOutput((line) => log.line({ kind: 'log', level: 'INFO', type: 'hook', msgid: null, message: line, time: null }));
  const channel = new AbortController();
  const started = Date.now();
  const exec = conn.execRaw(hookScript({ home: run.home, jobId: run.jobId, phase, state: run.state, command: hook.command }), {
    signal: channel.signal,
    // Nothing is buffered by the SSH wrapper: HookOutput keeps what the log gets.
    maxOutput: 0,
    onStdout: (c) => out.push(c),
    onStderr: (c) => out.push(c),
  });
  exec.catch(() => {}); // awaited below; a kill may settle it first
  let stop: 'timeout' | 'cancel' | undefined;
  const beat = setInterval(() => run.beat(), 2000);
  let timer: NodeJS.Timeout | undefined;
  const stopped = new Promise<'timeout' | 'cancel'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutSeconds * 1000);
    if (signal.aborted) resolve('cancel');
    signal.addEventListener('abort', () => resolve('cancel'), { once: true });
  });
  let result: Awaited<typeof exec> | undefined;
  try {
    const first = await Promise.race([exec.then((r) => ({ r })), stopped.then((s) => ({ s }))]);
    if ('s' in first) {
      stop = first.s;
      await conn.execRaw(killHookScript(run.home, run.jobId), { timeoutMs: 60_000 });
      // The wrapper exits once the group is gone; a descendant that left the group and holds the
      // channel's output open must not hold the job too.
      const closeTimer = setTimeout(() => channel.abort(), CLOSE_GRACE_MS);
      result = await exec.catch(() => undefined);
      clearTimeout(closeTimer);
    } else result = first.r;
  } finally {
    clearInterval(beat);
    clearTimeout(timer);
  }
  const dropped = await out.end();
  if (dropped) await log.own(`${label}: ${dropped}`, 'WARNING');
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (stop === 'cancel') {
    await log.own(`cancelled: ${label} stopped on the client`, 'WARNING');
    await log.flush();
    throw new CancelledFailure(`${label} cancelled`);
  }
  let failure: string | undefined;
  const last = out.lastLine();
  if (stop === 'timeout') failure = `${label} ${commandPreview(hook.command)} timed out after ${timeoutSeconds} s: its processes on the client were killed`;
  else if (!result) failure = `${label} ${commandPreview(hook.command)}: the client closed the connection`;
  else if (result.code === 0) {
    await log.own(`${label} finished (${took})`);
    return undefined;
  } else {
    const how = result.code === null ? `was killed by signal ${result.signal ?? '?'}` : `failed with exit code ${result.code}${result.code === 127 ? ' (command not found)' : result.code === 126 ? ' (not executable)' : ''}`;
    failure = `${label} ${commandPreview(hook.command)} ${how}${last ? `: ${last}` : ''}`;
  }
  await log.own(failure, 'ERROR');
  return failure;
}
