// `npm start`: provision, then run the whole stack in the foreground under the supervisor until
// Ctrl-C. Order matters: Temporal before the worker, the repository service before sshd sessions
// can reach it, the web app last (its /healthz says the stack is up).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { sshdCommand } from '../sshd.js';
import { baseEnv } from '../subprocess.js';
import { connectableHost, httpStatus, isListening, isLoopback, parseHostPort, tcpAnswers, waitFor } from './net.js';
import { formatMs, provision } from './provision.js';
import { Supervisor } from './supervisor.js';
import { devServerArgs, ensureNamespaceAndSearchAttributes, temporalAnswers, waitForTemporal } from './temporal-server.js';
import { STORAGE_NODE_ARGS } from '../../worker/storage-node-args.js';

export interface StartOptions {
  projectDir: string;
  print: (line: string) => void;
}

function pidFile(config: Config): string {
  return join(config.paths.runDir, 'local-stack.pid');
}

/** The pid of a running `npm start` for this data dir, if any. */
function runningStack(config: Config): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(config), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
    // The pid must still be a local-stack process, not an unrelated one that reused the number.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('local-stack') ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with the exit code. */
export async function startStack(config: Config, opts: StartOptions): Promise<number> {
  const { print } = opts;
  const t0 = Date.now();
  const other = runningStack(config);
  if (other) {
    print(`BorgCube's local stack is already running (pid ${other}): console at ${config.web.publicUrl}, Temporal UI at ${config.temporal.uiUrl}.`);
    print(`Stop it with Ctrl-C in its terminal (or kill ${other}) before starting another.`);
    return 1;
  }
  if (await tcpAnswers(connectableHost(config.web.host), config.web.port)) {
    print(`Something already listens on ${config.web.host}:${config.web.port} (another BorgCube started by hand?). Stop it, or set BORGCUBE_WEB_PORT to another port.`);
    return 1;
  }

  const shutdown = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    // bootstrap.mjs forwards the terminal's Ctrl-C that we also got directly: one stop is enough.
    if (signals === 1) print(`\n${sig}: stopping BorgCube…`);
    shutdown.abort(new Error(`stopped by ${sig}`));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

  const supervisor = new Supervisor({ logDir: config.paths.logDir, print, color: Boolean(process.stdout.isTTY) });
  let wrotePid = false;
  try {
    print(`Provisioning (data dir ${config.dataDir})`);
    const prov = await provision(config, { mode: 'start', projectDir: opts.projectDir, print, signal: shutdown.signal });
    print(`Provisioned in ${formatMs(prov.ms)}.`);
    shutdown.signal.throwIfAborted();
    writeFileSync(pidFile(config), `${process.pid}\n`, { mode: 0o644 });
    wrotePid = true;

    // Temporal: reuse whatever answers at TEMPORAL_ADDRESS; start the dev server only on this machine.
    const { address, namespace } = config.temporal;
    if (await temporalAnswers(address)) {
      const added = await ensureNamespaceAndSearchAttributes(address, namespace);
      print(`temporal: reusing the server at ${address}${added.length ? ` (registered ${added.join(', ')})` : ''}`);
    } else {
      const { host } = parseHostPort(address);
      if (!isLoopback(host)) throw new Error(`Temporal does not answer at ${address} (TEMPORAL_ADDRESS); start it, or unset TEMPORAL_ADDRESS to use the embedded dev server`);
      const ui = new URL(config.temporal.uiUrl);
      print(`temporal: starting the dev server on ${address} (UI ${config.temporal.uiUrl}, state in ${config.paths.temporalDir})`);
      await supervisor.start({
        name: 'temporal',
        file: prov.temporalCli!.path,
        args: devServerArgs({ address, namespace, dbFile: join(config.paths.temporalDir, 'temporal.db'), uiPort: Number(ui.port || 80) }),
        env: { ...process.env, HOME: process.env.HOME ?? '/root' },
        ready: (signal) => waitForTemporal(address, namespace, { timeoutMs: 120_000, signal }),
      });
      // A server whose SQLite file predates an attribute still gets it.
      await ensureNamespaceAndSearchAttributes(address, namespace);
      if (isLoopback(ui.hostname)) {
        const status = await waitFor('Temporal UI', async () => (await httpStatus(config.temporal.uiUrl)) ?? false, { timeoutMs: 30_000, signal: shutdown.signal }).catch(() => undefined);
        if (status === undefined) print(`temporal: warning: the UI does not answer at ${config.temporal.uiUrl}`);
      }
    }
    shutdown.signal.throwIfAborted();

    // Readiness below looks for a listening socket, so a port taken by someone else must be caught first.
    if (isListening(config.ssh.port)) throw new Error(`port ${config.ssh.port} is already in use; stop what listens there or set BORGCUBE_SSH_PORT`);
    const [sshdFile, sshdArgs] = sshdCommand({ dir: config.paths.sshdDir });
    await supervisor.start({
      name: 'sshd',
      file: sshdFile,
      args: sshdArgs,
      env: baseEnv(),
      ready: (signal) => waitFor(`sshd on port ${config.ssh.port}`, () => isListening(config.ssh.port), { timeoutMs: 20_000, signal }).then(() => undefined),
      readyTimeoutMs: 25_000,
    });
    shutdown.signal.throwIfAborted();

    const nodeEnv = { ...process.env };
    const { storage } = prov.accounts;
    const entries = [
      {
        name: 'storage',
        entry: 'dist/worker/storage-main.js',
        nodeArgs: STORAGE_NODE_ARGS,
        // Same environment, but the storage account's own HOME: borg keeps its config and cache there.
        env: { ...nodeEnv, HOME: storage.home, USER: storage.name, LOGNAME: storage.name },
        uid: storage.uid,
        gid: storage.gid,
      },
      { name: 'worker', entry: 'dist/worker/main.js', env: nodeEnv, nodeArgs: [] },
      { name: 'web', entry: 'dist/web/main.js', env: nodeEnv, nodeArgs: [] },
    ];
    const started = new Set<string>();
    for (const e of entries) {
      const file = join(opts.projectDir, e.entry);
      if (!existsSync(file)) {
        print(`${e.name}: skipped — ${e.entry} does not exist yet (its source is not written or not built)`);
        continue;
      }
      await supervisor.start({ name: e.name, file: process.execPath, args: ['--enable-source-maps', ...e.nodeArgs, file], env: e.env, cwd: opts.projectDir, uid: e.uid, gid: e.gid });
      started.add(e.name);
    }

    const healthUrl = `http://${connectableHost(config.web.host)}:${config.web.port}/healthz`;
    if (started.has('web')) {
      await waitFor(`the web console (GET ${healthUrl} → 200)`, async () => (await httpStatus(healthUrl)) === 200, { timeoutMs: 90_000, intervalMs: 500, signal: shutdown.signal }).catch((err: Error) => {
        if (shutdown.signal.aborted) throw err;
        throw new Error(`${err.message}; see ${supervisor.logFile('web')}`);
      });
    }

    const login = prov.admin?.password
      ? `log in as admin with the one-time password ${prov.admin.password} (shown once; change it after logging in)`
      : 'log in as admin with the password you set in BORGCUBE_ADMIN_PASSWORD, or the one printed at the first start';
    print('');
    print(`BorgCube is up (${formatMs(Date.now() - t0)}).`);
    print(`  console      ${started.has('web') ? config.web.publicUrl : `${config.web.publicUrl} (not running: dist/web/main.js is missing)`}`);
    print(`               ${login}`);
    print(`  Temporal UI  ${config.temporal.uiUrl}`);
    print(`  SSH proxy    ${config.accounts.proxy}@${config.ssh.host}:${config.ssh.port}`);
    print(`  logs         ${config.paths.logDir}/`);
    print('  Stop with Ctrl-C.');

    await new Promise<void>((resolve) => shutdown.signal.addEventListener('abort', () => resolve(), { once: true }));
    await supervisor.stop();
    print('BorgCube stopped.');
    return 0;
  } catch (err) {
    await supervisor.stop();
    if (shutdown.signal.aborted) {
      print('BorgCube stopped.');
      return 0;
    }
    print(`\nnpm start failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    if (wrotePid) rmSync(pidFile(config), { force: true });
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
  }
}
