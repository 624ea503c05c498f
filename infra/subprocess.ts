// The one subprocess wrapper (STYLE.md §7): argv arrays only (never a shell), explicit
// environment, bounded output buffers, a timeout, cancellation through an AbortSignal, and an
// optional account to run as. Everything that runs a program on this machine goes through here.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  /** The complete environment of the child (nothing is inherited unless passed). */
  env?: Record<string, string | undefined>;
  /** Written to stdin, then stdin is closed. */
  input?: string | Buffer;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Keep at most this many bytes of stdout / stderr (the rest is counted and dropped). */
  maxOutput?: number;
  uid?: number;
  gid?: number;
  /** Called with every stderr chunk as it arrives. */
  onStderr?: (chunk: Buffer) => void;
  onStdout?: (chunk: Buffer) => void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  /** True when output beyond maxOutput was dropped. */
  truncated: boolean;
  timedOut: boolean;
}

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const why = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exited with ${result.code}`;
    const tail = lastLine(result.stderr) || lastLine(result.stdout);
    super(`${command} ${why}${tail ? `: ${tail}` : ''}`);
  }
}

function lastLine(b: Buffer): string {
  const lines = b.toString('utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines[lines.length - 1] ?? '').slice(0, 500);
}

/** A minimal environment for programs we run: PATH and locale, plus what the caller adds. */
export function baseEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...extra };
}

class Collector {
  private parts: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(chunk: Buffer) {
    if (this.size >= this.max) {
      this.truncated = true;
      return;
    }
    const room = this.max - this.size;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.parts.push(part);
    this.size += part.length;
  }
  get value() {
    return Buffer.concat(this.parts);
  }
}

/** Runs a program to completion. Resolves with the result whatever the exit code. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: opts.cwd,
        env: opts.env ?? baseEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
        uid: opts.uid,
        gid: opts.gid,
      });
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const max = opts.maxOutput ?? 16 * 1024 * 1024;
    const out = new Collector(max);
    const err = new Collector(max);
    let timedOut = false;
    let settled = false;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 5000).unref();
      }
    };
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, opts.timeoutMs)
      : undefined;
    const onAbort = () => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (c: Buffer) => {
      out.push(c);
      opts.onStdout?.(c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      err.push(c);
      opts.onStderr?.(c);
    });
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal, stdout: out.value, stderr: err.value, truncated: out.truncated || err.truncated, timedOut });
    });
    child.stdin!.on('error', () => {}); // EPIPE when the program exits without reading its input
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Runs a program and throws a CommandError unless it exits 0. */
export async function runChecked(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new CommandError([file, ...args.slice(0, 3)].join(' '), r);
  return r;
}
