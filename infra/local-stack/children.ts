// The children of `npm start`, in the order they must come up: Temporal before the worker, sshd,
// then the product's processes (the repository service before sshd sessions can reach it, the
// web console last, since its /healthz says the stack is up).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Account } from '../accounts.js';
import type { Config } from '../config.js';
import { sshdCommand } from '../sshd.js';
import { baseEnv } from '../subprocess.js';
import { describeTemporal, temporalConnectionOptions } from '../temporal.js';
import { connectableHost, httpStatus, isListening, isLoopback, waitFor } from './net.js';
import { programs } from './programs.js';
import type { Supervisor } from './supervisor.js';
import { devServerArgs, ensureNamespaceAndSearchAttributes, temporalAnswers, waitForTemporal } from './temporal-server.js';

export interface ChildContext {
  config: Config;
  supervisor: Supervisor;
  projectDir: string;
  print: (line: string) => void;
  signal: AbortSignal;
  /** DATABASE_URL of the product's processes: BorgCube's own role (database-role.ts), not the administrator's. */
  databaseUrl: string;
}

/**
 * Reuses whatever answers at TEMPORAL_ADDRESS; starts the dev server only on this machine, and
 * never for an external frontend (TLS, an API key or another host: a cluster or Temporal Cloud).
 */
export async function startTemporal(c: ChildContext, cliPath: string | undefined): Promise<void> {
  const { config, print } = c;
  const { address, namespace } = config.temporal;
  const target = temporalConnectionOptions(config);
  if (await temporalAnswers(target)) {
    const added = await ensureNamespaceAndSearchAttributes(target, namespace);
    print(`temporal: ${config.temporal.external ? 'using' : 'reusing'} the server at ${describeTemporal(config)}${added.length ? ` (registered ${added.join(', ')})` : ''}`);
    return;
  }
  if (config.temporal.external) {
    throw new Error(`Temporal does not answer at ${describeTemporal(config)}. BorgCube does not start a dev server for an external Temporal: start the cluster or check the address, TLS and API key settings (README: Running on a Temporal cluster or Temporal Cloud), or unset TEMPORAL_ADDRESS and the TEMPORAL_TLS_* / TEMPORAL_API_KEY variables to use the embedded dev server`);
  }
  if (!cliPath) throw new Error('no Temporal CLI to start the dev server with');
  const ui = new URL(config.temporal.uiUrl);
  print(`temporal: starting the dev server on ${address} (UI ${config.temporal.uiUrl}, state in ${config.paths.temporalDir})`);
  await c.supervisor.start({
    name: 'temporal',
    file: cliPath,
    args: devServerArgs({ address, namespace, dbFile: join(config.paths.temporalDir, 'temporal.db'), uiPort: Number(ui.port || 80) }),
    env: { ...process.env, HOME: process.env.HOME ?? '/root' },
    ready: (signal) => waitForTemporal(address, namespace, { timeoutMs: 120_000, signal }),
  });
  // A server whose SQLite file predates an attribute still gets it.
  await ensureNamespaceAndSearchAttributes(address, namespace);
  if (isLoopback(ui.hostname)) {
    const status = await waitFor('Temporal UI', async () => (await httpStatus(config.temporal.uiUrl)) ?? false, { timeoutMs: 30_000, signal: c.signal }).catch(() => undefined);
    if (status === undefined) print(`temporal: warning: the UI does not answer at ${config.temporal.uiUrl}`);
  }
}

export async function startSshd(c: ChildContext): Promise<void> {
  const port = c.config.ssh.port;
  // Readiness below looks for a listening socket, so a port taken by someone else must be caught first.
  if (isListening(port)) throw new Error(`port ${port} is already in use; stop what listens there or set BORGCUBE_SSH_PORT`);
  const [file, args] = sshdCommand({ dir: c.config.paths.sshdDir });
  await c.supervisor.start({
    name: 'sshd',
    file,
    args,
    env: baseEnv(),
    ready: (signal) => waitFor(`sshd on port ${port}`, () => isListening(port), { timeoutMs: 20_000, signal }).then(() => undefined),
    readyTimeoutMs: 25_000,
  });
}

/** The repository service (as the storage account), the worker and the web console; returns the names started. */
export async function startProduct(c: ChildContext, storage: Account): Promise<Set<string>> {
  const p = programs(c.projectDir);
  const nodeEnv = { ...process.env, DATABASE_URL: c.databaseUrl };
  const entries = [
    {
      name: 'storage',
      file: p.storage,
      args: ['--enable-source-maps'],
      built: p.storageMain,
      // Same environment, but the storage account's own HOME: borg keeps its config and cache there.
      env: { ...nodeEnv, HOME: storage.home, USER: storage.name, LOGNAME: storage.name, BORGCUBE_NODE: process.execPath },
      uid: storage.uid,
      gid: storage.gid,
    },
    { name: 'worker', file: process.execPath, args: ['--enable-source-maps', p.worker], built: p.worker, env: nodeEnv },
    { name: 'web', file: process.execPath, args: ['--enable-source-maps', p.web], built: p.web, env: nodeEnv },
  ];
  const started = new Set<string>();
  for (const e of entries) {
    if (!existsSync(e.built)) {
      c.print(`${e.name}: skipped — ${e.built} does not exist yet (its source is not written or not built)`);
      continue;
    }
    await c.supervisor.start({ name: e.name, file: e.file, args: e.args, env: e.env, cwd: c.projectDir, uid: e.uid, gid: e.gid });
    started.add(e.name);
  }
  if (started.has('web')) await waitForWeb(c);
  return started;
}

async function waitForWeb(c: ChildContext): Promise<void> {
  const healthUrl = `http://${connectableHost(c.config.web.host)}:${c.config.web.port}/healthz`;
  await waitFor(`the web console (GET ${healthUrl} → 200)`, async () => (await httpStatus(healthUrl)) === 200, { timeoutMs: 90_000, intervalMs: 500, signal: c.signal }).catch((err: Error) => {
    if (c.signal.aborted) throw err;
    throw new Error(`${err.message}; see ${c.supervisor.logFile('web')}`);
  });
}
