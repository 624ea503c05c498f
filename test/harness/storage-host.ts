// A second storage host for a test stack (stack-launcher.ts), on this machine: its own data dir,
// its own storage and proxy accounts (tagged test users), its own sshd on a free port and its own
// repository service + storage worker, sharing the stack's PostgreSQL, Redis and Temporal
// namespace as a storage host of the same installation does. The server's client key is copied
// into its data dir, as an admin copies it to a new storage host (README, several storage hosts).
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig, type Config } from '../../infra/config.js';
import { ensureDataDir } from '../../infra/local-stack/data-dir.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { programs } from '../../infra/local-stack/programs.js';
import { run, type RunResult } from '../../infra/subprocess.js';
import { registerCleanup } from './cleanup.js';
import { projectRoot } from './paths.js';
import type { ManagedProcess } from './process.js';
import { startBorgcubeSshd, type BorgcubeSshd } from './sshd.js';
import { storageProcess, type Stack } from './stack-launcher.js';
import { makeTaggedDir } from './tags.js';
import { createTaggedUser, newTestUserName, removeTestUser } from './users.js';

export interface StorageHost {
  name: string;
  config: Config;
  env: Record<string, string>;
  dataDir: string;
  /** Where its repositories go (removed with it). */
  reposDir: string;
  sshd: BorgcubeSshd;
  storage: ManagedProcess;
  /** Runs `borgcube ARGS…` on this storage host (its configuration). */
  cli(args: string[]): Promise<RunResult & { out: string; err: string }>;
  stop(): Promise<void>;
}

export async function launchStorageHost(stack: Stack, name: string): Promise<StorageHost> {
  const dataDir = makeTaggedDir(`storage-host-${name}`);
  const reposDir = `${dataDir}-repos`;
  const proxyName = newTestUserName();
  const storageName = newTestUserName();
  let sshd: BorgcubeSshd | undefined;
  let storage: ManagedProcess | undefined;
  const stop = registerCleanup(`storage host ${name} in ${dataDir}`, async () => {
    await storage?.stop();
    await sshd?.stop();
    await removeTestUser(proxyName);
    await removeTestUser(storageName);
    rmSync(reposDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
  try {
    // sshd runs the forced command through the proxy account's login shell.
    const proxyHome = join(dataDir, `home-${proxyName}`);
    const proxy = await createTaggedUser(proxyName, { home: proxyHome, shell: '/bin/sh' });
    const storageAccount = await createTaggedUser(storageName, { home: join(dataDir, 'storage'), shell: '/usr/sbin/nologin' });
    const baseEnv = {
      ...stack.env,
      BORGCUBE_DATA_DIR: dataDir,
      BORGCUBE_STORAGE_HOST: name,
      BORGCUBE_PROXY_USER: proxyName,
      BORGCUBE_STORAGE_USER: storageName,
    };
    const pre = loadConfig({ ...baseEnv, BORGCUBE_SSH_PORT: '2222' });
    // The server's client key, as on every storage host; ensureDataDir sets its owner and mode.
    mkdirSync(pre.paths.sshDir, { recursive: true, mode: 0o700 });
    copyFileSync(stack.config.ssh.keyPath, pre.ssh.keyPath);
    copyFileSync(`${stack.config.ssh.keyPath}.pub`, `${pre.ssh.keyPath}.pub`);
    await ensureDataDir(pre, { proxy: requireAccount(proxy.name), storage: requireAccount(storageAccount.name) });
    mkdirSync(proxyHome, { mode: 0o755 });
    mkdirSync(reposDir, { mode: 0o755 });
    sshd = await startBorgcubeSshd({ dataDir, inDataDir: true, proxyUser: proxyName });
    const env: Record<string, string> = { ...baseEnv, BORGCUBE_SSH_PORT: String(sshd.port) };
    const config = loadConfig(env);
    storage = storageProcess(config, env, requireAccount(storageAccount.name));
    await storage.start();
    const started = storage;
    await waitFor('the second repository service socket', () => {
      if (!started.alive()) throw new Error(`the repository service of ${name} exited:\n${started.tail()}`);
      return existsSync(config.paths.storageSocket);
    }, { timeoutMs: 30_000 });
    return {
      name,
      config,
      env,
      dataDir,
      reposDir,
      sshd,
      storage,
      cli: async (args) => {
        const r = await run(process.execPath, [programs(projectRoot).cli, ...args], { env, timeoutMs: 300_000 });
        return { ...r, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
      },
      stop,
    };
  } catch (err) {
    if (storage) process.stderr.write(`${storage.tail()}\n`);
    await stop();
    throw err;
  }
}
