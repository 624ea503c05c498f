// A tiny process supervisor for `npm start`: runs each part of the stack as a child, prefixes
// its output into the terminal and appends it to <data dir>/logs/<name>.log, restarts a child that
// dies with a growing delay, and stops everything in reverse order (SIGTERM, then SIGKILL).
//
// Children are spawned directly rather than through infra/subprocess.ts: that wrapper runs a
// program to completion with bounded buffers, while a supervisor needs the live process handle and
// its own process group per child. The group keeps a terminal's Ctrl-C away from the children (so
// the supervisor can stop them in order) and lets a stop reach what a child forked (sshd sessions).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ChildSpec {
  name: string;
  file: string;
  args: string[];
  /** The complete environment of the child. */
  env: Record<string, string | undefined>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /**
   * Resolves once the child is usable. A child that exits (or does not get ready in
   * readyTimeoutMs) before that fails `start()`.
   */
  ready?: (signal: AbortSignal) => Promise<void>;
  readyTimeoutMs?: number;
}

interface Child {
  spec: ChildSpec;
  proc?: ChildProcess;
  exited?: Promise<void>;
  log: WriteStream;
  startedAt: number;
  delayMs: number;
  restartTimer?: NodeJS.Timeout;
}

export interface SupervisorOptions {
  logDir: string;
  print: (line: string) => void;
  /** How long a child gets between SIGTERM and SIGKILL. */
  graceMs?: number;
  color?: boolean;
}

const colors = [36, 33, 35, 32, 34, 31];
const maxDelayMs = 30_000;
// A child that ran this long before dying is restarted quickly again: the crash is not a loop.
const stableAfterMs = 60_000;

export class Supervisor {
  private readonly children: Child[] = [];
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private nameWidth = 8;

  constructor(private readonly opts: SupervisorOptions) {}

  get isStopping() {
    return this.stopping;
  }

  logFile(name: string): string {
    return join(this.opts.logDir, `${name}.log`);
  }

  /** Starts a child and waits until it is ready; throws (after stopping it) if it fails first. */
  async start(spec: ChildSpec): Promise<void> {
    if (this.stopping) throw new Error('the stack is stopping');
    this.nameWidth = Math.max(this.nameWidth, spec.name.length);
    const child: Child = { spec, log: createWriteStream(this.logFile(spec.name), { flags: 'a', mode: 0o600 }), startedAt: 0, delayMs: 1000 };
    this.children.push(child);
    this.spawnChild(child);
    if (!spec.ready) return;
    const abort = new AbortController();
    const timeoutMs = spec.readyTimeoutMs ?? 120_000;
    const timer = setTimeout(() => abort.abort(new Error(`${spec.name} was not ready after ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    const diedFirst = child.exited!.then(() => {
      throw new Error(`${spec.name} exited before it was ready (${this.describeExit(child)}); see ${this.logFile(spec.name)}`);
    });
    try {
      await Promise.race([spec.ready(abort.signal), diedFirst]);
    } catch (err) {
      abort.abort();
      await this.stopChild(child);
      throw err instanceof Error && abort.signal.reason instanceof Error && err.name === 'AbortError' ? abort.signal.reason : err;
    } finally {
      clearTimeout(timer);
      diedFirst.catch(() => {});
    }
  }

  private describeExit(child: Child): string {
    const p = child.proc;
    if (!p) return 'did not start';
    return p.signalCode ? `killed by ${p.signalCode}` : `exit code ${p.exitCode}`;
  }

  private prefix(name: string): string {
    const label = name.padEnd(this.nameWidth);
    if (!this.opts.color) return `${label} | `;
    const i = this.children.findIndex((c) => c.spec.name === name);
    return `\x1b[${colors[i % colors.length]}m${label}\x1b[0m | `;
  }

  private spawnChild(child: Child): void {
    const { spec } = child;
    child.startedAt = Date.now();
    child.log.write(`--- ${new Date().toISOString()} starting: ${[spec.file, ...spec.args].join(' ')}\n`);
    const proc = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      uid: spec.uid,
      gid: spec.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.proc = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        child.log.write(`${line}\n`);
        // Shutdown chatter (Temporal's pollers complaining about the closed socket) stays in the log.
        if (!this.stopping) this.opts.print(this.prefix(spec.name) + line);
      });
    }
    child.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (why: string) => {
        if (done) return;
        done = true;
        child.log.write(`--- ${new Date().toISOString()} ${why}\n`);
        resolve();
        this.onExit(child);
      };
      proc.on('exit', () => finish(this.describeExit(child)));
      proc.on('error', (err) => finish(`could not start: ${err.message}`));
    });
  }

  private onExit(child: Child): void {
    if (this.stopping || child.restartTimer) return;
    const ranMs = Date.now() - child.startedAt;
    if (ranMs > stableAfterMs) child.delayMs = 1000;
    const delay = child.delayMs;
    child.delayMs = Math.min(child.delayMs * 2, maxDelayMs);
    this.opts.print(`${this.prefix(child.spec.name)}exited unexpectedly (${this.describeExit(child)}); restarting in ${Math.round(delay / 1000)} s — see ${this.logFile(child.spec.name)}`);
    child.restartTimer = setTimeout(() => {
      child.restartTimer = undefined;
      if (!this.stopping) this.spawnChild(child);
    }, delay);
  }

  private async stopChild(child: Child): Promise<void> {
    if (child.restartTimer) clearTimeout(child.restartTimer);
    child.restartTimer = undefined;
    const proc = child.proc;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-proc.pid!, sig);
      } catch {
        /* the group is gone already */
      }
    };
    const onExit = (child.exited ?? Promise.resolve()).then(() => true);
    // A child we are stopping must not be restarted by onExit.
    const wasStopping = this.stopping;
    this.stopping = true;
    signalGroup('SIGTERM');
    const grace = new AbortController();
    const graceful = await Promise.race([onExit, sleep(this.opts.graceMs ?? 10_000, false, { signal: grace.signal }).catch(() => false)]);
    grace.abort();
    if (!graceful) {
      this.opts.print(`${this.prefix(child.spec.name)}did not stop within ${Math.round((this.opts.graceMs ?? 10_000) / 1000)} s; killing it`);
      signalGroup('SIGKILL');
      await onExit;
    } else {
      // Whatever the child forked and left in its group (an sshd session) goes with it.
      signalGroup('SIGKILL');
    }
    this.stopping = wasStopping;
  }

  /** Stops every child, the last started first. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    for (const child of [...this.children].reverse()) {
      const running = child.proc?.exitCode === null && child.proc.signalCode === null;
      await this.stopChild(child);
      if (running) this.opts.print(`${this.prefix(child.spec.name)}stopped`);
    }
    await Promise.all(this.children.map((c) => new Promise<void>((resolve) => c.log.end(resolve))));
  }
}
