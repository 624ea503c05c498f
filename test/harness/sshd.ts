// Throwaway sshd instances on free loopback ports:
// - startClientSshd(): plays the "client hosts" — ordinary public-key logins into test users
//   (client-host.ts), the way BorgCube reaches a real client.
// - startBorgcubeSshd(): BorgCube's own sshd (infra/sshd.ts config) for a given storage socket,
//   the door clients' borg uses to reach the proxy.
// Each runs from a tagged temp folder (tags.ts) so a crashed run's sshd is found and ended.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dataPaths } from '../../infra/config.js';
import { authorizedKeysScriptPath } from '../../infra/local-stack/programs.js';
import { freePort, sshBanner, waitFor } from '../../infra/local-stack/net.js';
import { normalizeKey } from '../../infra/ssh.js';
import { prepareSshd, sshdCommand, sshdPaths, type SshdInstance } from '../../infra/sshd.js';
import { runChecked } from '../../infra/subprocess.js';
import { registerCleanup } from './cleanup.js';
import { descendants, killPids, processTable } from './proc-table.js';
import { makeTaggedDir, recordProcess, userPrefix } from './tags.js';
import { projectRoot } from './paths.js';

const maxLog = 256 * 1024;

class SshdProcess {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';

  private readonly configPath: string;

  constructor(
    private readonly dir: string,
    readonly port: number,
  ) {
    this.configPath = sshdPaths(dir).config;
  }

  /** sshd's own log (stderr with -e), for assertions and failure messages. */
  get log(): string {
    return this.output;
  }

  /** The listener's pid (benchmarks sample the CPU of everything below it). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const [file, args] = sshdCommand({ dir: this.dir });
    // Its own process group, so stop() also ends the per-connection sshd children.
    const proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = proc;
    const collect = (c: Buffer) => {
      this.output = (this.output + c.toString('utf8')).slice(-maxLog);
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      proc.on('exit', () => resolve());
      proc.on('error', (err) => {
        collect(Buffer.from(`spawn failed: ${err.message}\n`));
        resolve();
      });
    });
    if (proc.pid) recordProcess(this.dir, proc.pid, this.configPath);
    let dead = false;
    void this.exited.then(() => (dead = true));
    await waitFor(
      `sshd on 127.0.0.1:${this.port}`,
      async () => {
        if (dead) throw new Error(`sshd exited: ${this.output.trim().split('\n').slice(-5).join(' | ')}`);
        return sshBanner('127.0.0.1', this.port, 1000);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    ).catch(async (err: Error) => {
      await this.stop();
      throw new Error(`${err.message}\n${this.output}`);
    });
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc?.pid || proc.exitCode !== null || proc.signalCode !== null) return;
    const group = (sig: NodeJS.Signals) => {
      try {
        process.kill(-proc.pid!, sig);
      } catch {
        /* gone */
      }
    };
    group('SIGTERM');
    const grace = new AbortController();
    const stopped = await Promise.race([this.exited.then(() => true), sleep(5000, false, { signal: grace.signal }).catch(() => false)]);
    grace.abort();
    group('SIGKILL');
    if (!stopped) await this.exited;
  }
}

function readHostKey(path: string): string {
  return normalizeKey(readFileSync(path, 'utf8'));
}

export interface ClientSshd {
  host: string;
  port: number;
  readonly pid: number | undefined;
  /** The host key it presents now, "ssh-ed25519 AAAA…" (no comment): what a pin should hold. */
  readonly hostPublicKey: string;
  readonly log: string;
  /** Restarts on the same port with a new host key; returns the new key. */
  regenerateHostKey(): Promise<string>;
  stop(): Promise<void>;
}

export interface ClientSshdOptions {
  /** AllowUsers patterns; default: every tagged test user (`bctest-*`). */
  allowUsers?: string[];
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  /** Default VERBOSE (tests assert on it); benchmarks log less. */
  logLevel?: SshdInstance['logLevel'];
  /**
   * Public keys root may log in with (a client whose SSH user is root). Without it root is
   * refused (`PermitRootLogin no`). See rootLoginConfig for how /root/.ssh stays untouched.
   */
  rootKeys?: string[];
}

/**
 * sshd_config lines letting root in with the keys in `keysFile` only. StrictModes checks every
 * folder above an AuthorizedKeysFile up to / for a root login (root's home, /root, is not above
 * it) and refuses one below /tmp (mode 1777), where the test's folders live; so root's keys come
 * through AuthorizedKeysCommand (root-owned /usr/bin/cat, run as root), which reads the file in the
 * test's own 0700 folder — and AuthorizedKeysFile none keeps /root/.ssh out of it.
 */
function rootLoginConfig(keysFile: string): string[] {
  if (/[\s%"']/.test(keysFile)) throw new Error(`unusable path for root's keys: ${keysFile}`);
  return ['PermitRootLogin prohibit-password', 'Match User root', '  AuthorizedKeysFile none', `  AuthorizedKeysCommand /usr/bin/cat ${keysFile}`, '  AuthorizedKeysCommandUser root'];
}

/** An sshd acting as the client machines: key logins into test users, sftp for pushes. */
export async function startClientSshd(opts: ClientSshdOptions = {}): Promise<ClientSshd> {
  const dir = makeTaggedDir('client-sshd');
  const port = await freePort();
  const { hostKey, config: configPath, pidFile } = sshdPaths(dir);
  const rootKeysFile = join(dir, 'root_authorized_keys');
  if (opts.rootKeys) writeFileSync(rootKeysFile, opts.rootKeys.map((k) => `${normalizeKey(k)}\n`).join(''), { mode: 0o600 });
  const allowUsers = [...(opts.allowUsers ?? [`${userPrefix}*`]), ...(opts.rootKeys ? ['root'] : [])];
  writeFileSync(
    configPath,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `AllowUsers ${allowUsers.join(' ')}`,
      ...(opts.rootKeys ? [] : ['PermitRootLogin no']),
      'AuthenticationMethods publickey',
      'PubkeyAuthentication yes',
      'AuthorizedKeysFile .ssh/authorized_keys',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // Test users have '*' as password so that key logins work without PAM (see users.ts).
      'UsePAM no',
      'StrictModes yes',
      'Subsystem sftp internal-sftp',
      'X11Forwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      'MaxStartups 100:30:200',
      'MaxSessions 32',
      `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
      ...(opts.extraConfig ?? []),
      // Match blocks last: they run to the end of the file.
      ...(opts.rootKeys ? rootLoginConfig(rootKeysFile) : []),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const keygen = async () => {
    rmSync(hostKey, { force: true });
    rmSync(`${hostKey}.pub`, { force: true });
    await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'borgcube-test-client', '-f', hostKey]);
  };
  await keygen();
  // sshd needs its privilege separation folder; systemd normally creates it.
  await runChecked('mkdir', ['-p', '/run/sshd']);
  let sshd = new SshdProcess(dir, port);
  const stop = registerCleanup(`client sshd on port ${port}`, async () => {
    await sshd.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    await runChecked('/usr/sbin/sshd', ['-t', '-f', configPath]);
    await sshd.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host: '127.0.0.1',
    port,
    get pid() {
      return sshd.pid;
    },
    get hostPublicKey() {
      return readHostKey(`${hostKey}.pub`);
    },
    get log() {
      return sshd.log;
    },
    regenerateHostKey: async () => {
      await sshd.stop();
      await keygen();
      sshd = new SshdProcess(dir, port);
      await sshd.start();
      return readHostKey(`${hostKey}.pub`);
    },
    stop,
  };
}

export interface BorgcubeSshd {
  host: string;
  port: number;
  readonly pid: number | undefined;
  hostPublicKey: string;
  /** The folder with sshd_config and the host key. */
  dir: string;
  readonly log: string;
  /**
   * Kills the listener and every connection it serves (SIGKILL, as a crash would), then starts
   * it again on the same port and config, after `downMs` (fault tests).
   */
  crashAndRestart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface BorgcubeSshdOptions {
  /** The data dir whose storage socket to use (ignored when storageSocket is given). */
  dataDir?: string;
  storageSocket?: string;
  /** Default: the proxy account of the local stack (`borgcube`). */
  proxyUser?: string;
  /** Default: <project>/dist/proxy/session/authorized-keys.js (built by npm test / npm run build). */
  authorizedKeysScript?: string;
  nodePath?: string;
  logLevel?: SshdInstance['logLevel'];
  /**
   * Put config and host key in the data dir's sshd folder, where the worker reads the host key it
   * pins for clients (a whole test stack); default: a temp folder of its own.
   */
  inDataDir?: boolean;
  /** A fixed port (a restarted sshd where clients expect the old one); default a free one. */
  port?: number;
}

/** BorgCube's own sshd config (infra/sshd.ts) on a free loopback port. */
export async function startBorgcubeSshd(opts: BorgcubeSshdOptions): Promise<BorgcubeSshd> {
  const storageSocket = opts.storageSocket ?? (opts.dataDir ? dataPaths(opts.dataDir).storageSocket : undefined);
  if (!storageSocket) throw new Error('startBorgcubeSshd needs dataDir or storageSocket');
  if (opts.inDataDir && !opts.dataDir) throw new Error('inDataDir needs dataDir');
  const dir = opts.inDataDir ? dataPaths(opts.dataDir!).sshdDir : makeTaggedDir('borgcube-sshd');
  const port = opts.port ?? (await freePort());
  let sshd: SshdProcess | undefined;
  const stop = registerCleanup(`BorgCube sshd on port ${port}`, async () => {
    await sshd?.stop();
    if (!opts.inDataDir) rmSync(dir, { recursive: true, force: true });
  });
  try {
    await prepareSshd({
      dir,
      port,
      listenAddress: '127.0.0.1',
      proxyUser: opts.proxyUser ?? 'borgcube',
      nodePath: opts.nodePath ?? process.execPath,
      authorizedKeysScript: opts.authorizedKeysScript ?? authorizedKeysScriptPath(projectRoot),
      storageSocket,
      logLevel: opts.logLevel ?? 'VERBOSE',
    });
    sshd = new SshdProcess(dir, port);
    await sshd.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host: '127.0.0.1',
    port,
    get pid() {
      return sshd?.pid;
    },
    hostPublicKey: readHostKey(sshdPaths(dir).hostPublicKey),
    dir,
    get log() {
      return sshd?.log ?? '';
    },
    crashAndRestart: async (downMs = 0) => {
      const listener = sshd?.pid;
      if (listener) killPids([listener, ...descendants(processTable(), listener).map((p) => p.pid)]);
      await sshd?.stop();
      await sleep(downMs);
      sshd = new SshdProcess(dir, port);
      await sshd.start();
    },
    stop,
  };
}
