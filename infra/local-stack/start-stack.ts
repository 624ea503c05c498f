// `npm start`: provision, link the CLI onto PATH, then run the whole stack in the foreground
// under the supervisor until Ctrl-C (children.ts starts the parts in their order).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { startProduct, startSshd, startTemporal, type ChildContext } from './children.js';
import { describeCliLink, ensureCliLink } from './cli-link.js';
import { connectableHost, tcpAnswers } from './net.js';
import { programs } from './programs.js';
import { formatMs, provision, type ProvisionResult } from './provision.js';
import { Supervisor } from './supervisor.js';

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
    const cliLink = ensureCliLink(programs(opts.projectDir).cli);
    shutdown.signal.throwIfAborted();
    writeFileSync(pidFile(config), `${process.pid}\n`, { mode: 0o644 });
    wrotePid = true;

    const c: ChildContext = { config, supervisor, projectDir: opts.projectDir, print, signal: shutdown.signal, databaseUrl: prov.databaseUrl ?? config.databaseUrl };
    await startTemporal(c, prov.temporalCli?.path);
    shutdown.signal.throwIfAborted();
    await startSshd(c);
    shutdown.signal.throwIfAborted();
    const started = await startProduct(c, prov.accounts.storage);
    printBanner(config, { print, ms: Date.now() - t0, webRunning: started.has('web'), admin: prov.admin, cli: describeCliLink(cliLink, programs(opts.projectDir).cli) });

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

function printBanner(config: Config, b: { print: (line: string) => void; ms: number; webRunning: boolean; admin: ProvisionResult['admin']; cli: string }): void {
  const { print } = b;
  const login = b.admin?.password
    ? `log in as admin with the one-time password ${b.admin.password} (shown once; change it after logging in)`
    : 'log in as admin with the password you set in BORGCUBE_ADMIN_PASSWORD, or the one printed at the first start';
  print('');
  print(`BorgCube is up (${formatMs(b.ms)}).`);
  print(`  console      ${b.webRunning ? config.web.publicUrl : `${config.web.publicUrl} (not running: dist/web/main.js is missing)`}`);
  print(`               ${login}`);
  print(`  CLI          ${b.cli}`);
  print(`  Temporal UI  ${config.temporal.uiUrl}`);
  print(`  SSH proxy    ${config.accounts.proxy}@${config.ssh.host}:${config.ssh.port}`);
  print(`  logs         ${config.paths.logDir}/`);
  print('  Stop with Ctrl-C.');
}
