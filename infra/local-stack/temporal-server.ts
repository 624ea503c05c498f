// The Temporal dev server (TEMPORAL.md): find or build the `temporal` CLI, build the
// `server start-dev` command line, wait until a server answers, and make sure a server we reuse
// knows the namespace and BorgCube's search attributes.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { run, runChecked } from '../subprocess.js';
import type { TemporalConnectionOptions } from '../temporal.js';
import { searchAttributeCliArgs, searchAttributes } from '../temporal-search-attributes.js';
import { parseHostPort, waitFor } from './net.js';

export const temporalCliVersion = '1.5.1';
const temporalCliModule = `github.com/temporalio/cli/cmd/temporal@v${temporalCliVersion}`;
// v1.5.1 needs Go 1.25 (TEMPORAL.md: the newest release `go install` accepts).
const minGo = [1, 25] as const;

export interface TemporalCli {
  path: string;
  /** How it was found, for the one line the setup prints. */
  source: 'TEMPORAL_CLI_PATH' | 'PATH' | '.tools' | 'built';
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs].filter(Boolean);
  return dirs.map((d) => join(d, name)).find(isExecutable);
}

/**
 * TEMPORAL_CLI_PATH, else `temporal` on PATH, else `<project>/.tools/bin/temporal`, else (when
 * `build`) `go install` it there. Throws with what to do when none works.
 */
export async function resolveTemporalCli(opts: { configured?: string; projectDir: string; build: boolean; print?: (line: string) => void }): Promise<TemporalCli> {
  if (opts.configured) {
    if (!isExecutable(opts.configured)) throw new Error(`TEMPORAL_CLI_PATH=${opts.configured} is not an executable file`);
    return { path: opts.configured, source: 'TEMPORAL_CLI_PATH' };
  }
  const onPath = findOnPath('temporal');
  if (onPath) return { path: onPath, source: 'PATH' };
  const binDir = join(opts.projectDir, '.tools', 'bin');
  const tools = join(binDir, 'temporal');
  if (isExecutable(tools)) return { path: tools, source: '.tools' };
  if (!opts.build) throw new Error('no Temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or run `npm start` once to build it');
  await buildTemporalCli(binDir, opts.print ?? (() => {}));
  return { path: tools, source: 'built' };
}

async function buildTemporalCli(binDir: string, print: (line: string) => void): Promise<void> {
  // Go's own tarball installs to /usr/local/go, which is often not on a root shell's PATH.
  const go = findOnPath('go', ['/usr/local/go/bin', '/usr/lib/go/bin']);
  const howToGetGo = `install Go >= ${minGo.join('.')} (https://go.dev/dl/, unpack to /usr/local/go) or install the \`temporal\` CLI yourself and set TEMPORAL_CLI_PATH`;
  if (!go) throw new Error(`the Temporal CLI is not installed and Go is not available to build it: ${howToGetGo}`);
  const env = { ...process.env, HOME: process.env.HOME ?? '/root' };
  const version = (await runChecked(go, ['env', 'GOVERSION'], { env })).stdout.toString().trim();
  const m = /^go(\d+)\.(\d+)/.exec(version);
  if (!m || Number(m[1]) < minGo[0] || (Number(m[1]) === minGo[0] && Number(m[2]) < minGo[1])) {
    throw new Error(`${go} is ${version || 'of unknown version'}; building the Temporal CLI v${temporalCliVersion} needs Go >= ${minGo.join('.')}: ${howToGetGo}`);
  }
  mkdirSync(binDir, { recursive: true });
  print(`building the Temporal CLI v${temporalCliVersion} with ${version} into ${binDir} (takes several minutes the first time, seconds once Go's caches are warm)…`);
  const started = Date.now();
  const r = await run(go, ['install', '-ldflags', `-X github.com/temporalio/cli/temporalcli.Version=${temporalCliVersion}`, temporalCliModule], {
    env: { ...env, CGO_ENABLED: '0', GOBIN: binDir },
    timeoutMs: 45 * 60_000,
    maxOutput: 256 * 1024,
  });
  if (r.code !== 0) {
    throw new Error(`go install ${temporalCliModule} failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}):\n${r.stderr.toString().trim().split('\n').slice(-15).join('\n')}`);
  }
  print(`built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)} s`);
}

export interface DevServerOptions {
  /** host:port of the frontend (gRPC). */
  address: string;
  namespace: string;
  /** SQLite file; without it the server keeps everything in memory. */
  dbFile?: string;
  /** Web UI port; undefined with `headless`. */
  uiPort?: number;
  headless?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'never';
  /** Port of the server's Prometheus /metrics (bench:fleet reads the schedules' action delay there); none when undefined. */
  metricsPort?: number;
  /** `--sqlite-pragma NAME=VALUE` for a `dbFile` server. */
  sqlitePragmas?: Record<string, string>;
}

/** argv after the CLI path for `temporal server start-dev`. */
export function devServerArgs(o: DevServerOptions): string[] {
  const { host, port } = parseHostPort(o.address);
  const args = ['server', 'start-dev', '--ip', host, '--port', String(port), '--log-level', o.logLevel ?? 'warn'];
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  if (o.headless) args.push('--headless');
  else if (o.uiPort) args.push('--ui-port', String(o.uiPort));
  if (o.namespace !== 'default') args.push('--namespace', o.namespace);
  if (o.metricsPort) args.push('--metrics-port', String(o.metricsPort));
  for (const [k, v] of Object.entries(o.sqlitePragmas ?? {})) args.push('--sqlite-pragma', `${k}=${v}`);
  args.push(...searchAttributeCliArgs());
  return args;
}

/** A frontend: its address alone (a dev server), or the options built from the configuration (temporalConnectionOptions: TLS, API key). */
export type TemporalTarget = string | TemporalConnectionOptions;

async function withConnection<T>(target: TemporalTarget, fn: (c: Connection) => Promise<T>, connectTimeoutMs = 2000): Promise<T> {
  const options = typeof target === 'string' ? { address: target } : target;
  const connection = await Connection.connect({ ...options, connectTimeout: connectTimeoutMs });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}

/** True when a Temporal frontend answers at `address` (and knows `namespace`, when given). */
export async function temporalAnswers(target: TemporalTarget, namespace?: string, timeoutMs = 2000): Promise<boolean> {
  try {
    return await withConnection(
      target,
      async (c) => {
        await c.workflowService.getSystemInfo({});
        if (namespace) await c.workflowService.describeNamespace({ namespace });
        return true;
      },
      timeoutMs,
    );
  } catch {
    return false;
  }
}

export async function waitForTemporal(target: TemporalTarget, namespace: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const address = typeof target === 'string' ? target : target.address;
  await waitFor(`Temporal at ${address} (namespace ${namespace})`, () => temporalAnswers(target, namespace), { ...opts, intervalMs: 500 });
}

// IndexedValueType numbers of temporal.api.enums.v1 (the operator API takes the enum).
const indexedValueTypes: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  TEXT: 1,
  KEYWORD: 2,
  INT: 3,
  DOUBLE: 4,
  BOOL: 5,
  DATETIME: 6,
  KEYWORD_LIST: 7,
};

/**
 * For a server we did not start: registers the namespace if missing (a dev or self-hosted
 * cluster; Temporal Cloud namespaces are made in its console) and any missing search attribute.
 * Returns the names it added.
 */
export async function ensureNamespaceAndSearchAttributes(target: TemporalTarget, namespace: string): Promise<string[]> {
  return withConnection(target, async (c) => {
    const added: string[] = [];
    try {
      await c.workflowService.describeNamespace({ namespace });
    } catch (err) {
      // Only a namespace that does not exist is registered; "permission denied" on a cluster or
      // Temporal Cloud is reported as it is.
      if ((err as { code?: number }).code !== grpcNotFound) throw new Error(`Temporal namespace ${namespace}: ${(err as Error).message}`);
      await c.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('3 days') }).catch((e: Error) => {
        throw new Error(`Temporal namespace ${namespace} does not exist and could not be registered (${e.message}); create it on the cluster (temporal operator namespace create) or in Temporal Cloud`);
      });
      added.push(`namespace ${namespace}`);
      await waitFor(`namespace ${namespace}`, async () => (await c.workflowService.describeNamespace({ namespace })) && true, { timeoutMs: 30_000 });
    }
    const existing = await c.operatorService.listSearchAttributes({ namespace }).catch(() => undefined);
    const known = new Set([...Object.keys(existing?.customAttributes ?? {}), ...Object.keys(existing?.systemAttributes ?? {})]);
    const missing = Object.values(searchAttributes).filter((k) => !known.has(k.name));
    if (missing.length) {
      await c.operatorService
        .addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(missing.map((k) => [k.name, indexedValueTypes[k.type]!])),
        })
        .catch((e: Error) => {
          // Temporal Cloud takes search attributes only through its console or tcld.
          const list = missing.map((k) => `${k.name} (${k.type})`).join(', ');
          throw new Error(`Temporal namespace ${namespace} lacks BorgCube's search attributes ${list} and they could not be added (${e.message}); add them with \`temporal operator search-attribute create\` or in Temporal Cloud's namespace settings`);
        });
      added.push(...missing.map((k) => k.name));
    }
    return added;
  });
}

/** gRPC status NOT_FOUND. */
const grpcNotFound = 5;

export interface RunningDevServer {
  address: string;
  namespace: string;
  pid: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Attempts of launchDevServer when the dev server loses a race for one of its ports. */
const LAUNCH_ATTEMPTS = 3;

/**
 * Starts a dev server outside the supervisor (tests): output goes to `logFile`; resolves once it
 * answers. The process gets its own process group so a terminal's Ctrl-C reaches only its owner,
 * which stops it in order.
 *
 * The dev server picks free ports for its internal services and HTTP API itself and binds them a
 * moment later; a connection that takes one of them meanwhile makes it exit with "address
 * already in use" (it happened to `npm test` once). That is retried: the server picks its ports anew.
 */
export async function launchDevServer(cli: string, o: DevServerOptions & { logFile: string; timeoutMs?: number }): Promise<RunningDevServer> {
  for (let attempt = 1; ; attempt++) {
    const logStart = existsSync(o.logFile) ? statSync(o.logFile).size : 0;
    try {
      return await launchDevServerOnce(cli, o);
    } catch (err) {
      if (attempt >= LAUNCH_ATTEMPTS || !logSince(o.logFile, logStart).includes('address already in use')) throw err;
    }
  }
}

function logSince(file: string, offset: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = Math.min(fstatSync(fd).size - offset, 1024 * 1024);
      if (size <= 0) return '';
      const buf = Buffer.alloc(size);
      readSync(fd, buf, 0, size, offset);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

async function launchDevServerOnce(cli: string, o: DevServerOptions & { logFile: string; timeoutMs?: number }): Promise<RunningDevServer> {
  const fd = openSync(o.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(cli, devServerArgs(o), { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, HOME: process.env.HOME ?? '/root' } });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, sig) => resolve(`exited with ${sig ?? code}`));
    child.on('error', (e) => resolve(`could not start: ${e.message}`));
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const killer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 10_000);
    await exited;
    clearTimeout(killer);
  };
  const polling = new AbortController();
  const ready = waitForTemporal(o.address, o.namespace, { timeoutMs: o.timeoutMs ?? 120_000, signal: polling.signal });
  const outcome = await Promise.race([ready.then(() => undefined), exited]).catch(async (err: Error) => {
    await stop();
    throw new Error(`${err.message}; see ${o.logFile}`);
  });
  polling.abort();
  ready.catch(() => {});
  if (outcome !== undefined) throw new Error(`the Temporal dev server ${outcome} before answering; see ${o.logFile}`);
  return { address: o.address, namespace: o.namespace, pid: child.pid!, process: child, stop };
}
