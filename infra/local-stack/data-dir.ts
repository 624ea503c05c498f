// The service accounts and the data dir: created when missing, owners and modes repaired when
// they drifted; every function returns what it changed so that provisioning can say it.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { allowKeyOnlyLogin, ensureShell, ensureSystemAccount, lookupAccount, requireAccount, type Account } from '../accounts.js';
import type { Config } from '../config.js';
import { MasterKey } from '../secrets.js';
import { ensureServerKey } from '../server-key.js';

function accountHome(name: string, suffix: string, dataDir: string): string {
  const home = `/var/lib/${name}${suffix}`;
  return home === dataDir ? `${home}-home` : home;
}

export async function ensureAccounts(config: Config): Promise<{ accounts: { proxy: Account; storage: Account }; changes: string[] }> {
  const changes: string[] = [];
  const { proxy: proxyName, storage: storageName } = config.accounts;
  if (!lookupAccount(proxyName)) changes.push(`created ${proxyName}`);
  // sshd runs the forced command through the login shell, so the proxy account needs a real one.
  const proxy = await ensureSystemAccount(proxyName, { home: accountHome(proxyName, '-proxy', config.dataDir), shell: '/bin/sh', comment: 'BorgCube SSH proxy' });
  if (await ensureShell(proxyName, '/bin/sh')) changes.push(`${proxyName}: shell /bin/sh`);
  // BorgCube's sshd runs with UsePAM no, which refuses accounts with a locked ('!') password.
  if (await allowKeyOnlyLogin(proxyName)) changes.push(`${proxyName}: password field '*' (key logins allowed)`);
  if (!lookupAccount(storageName)) changes.push(`created ${storageName}`);
  const storage = await ensureSystemAccount(storageName, { home: accountHome(storageName, '', config.dataDir), shell: '/usr/sbin/nologin', comment: 'BorgCube repositories' });
  return { accounts: { proxy: requireAccount(proxy.name), storage: requireAccount(storage.name) }, changes };
}

/** mkdir if missing, then owner and mode exactly as given; returns what changed. */
function ensureDir(path: string, mode: number, uid: number, gid: number): string | undefined {
  let created = false;
  if (!existsSync(path)) {
    mkdirSync(path, { recursive: true, mode });
    created = true;
  }
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new Error(`${path} exists and is not a directory`);
  const fixed = fixOwnerAndMode(path, st, mode, uid, gid);
  return created ? `created ${path}` : fixed;
}

function ensureFile(path: string, mode: number, uid: number, gid: number): string | undefined {
  return fixOwnerAndMode(path, statSync(path), mode, uid, gid);
}

/** Sets owner and mode where they differ; says what it fixed. */
function fixOwnerAndMode(path: string, st: Stats, mode: number, uid: number, gid: number): string | undefined {
  const changes: string[] = [];
  if (st.uid !== uid || st.gid !== gid) {
    chownSync(path, uid, gid);
    changes.push('owner');
  }
  if ((st.mode & 0o7777) !== mode) {
    chmodSync(path, mode);
    changes.push(`mode ${mode.toString(8)}`);
  }
  return changes.length ? `fixed ${changes.join('+')} of ${path}` : undefined;
}

/**
 * The data dir layout (config.ts dataPaths): root 0711 so the service accounts can reach their
 * own subfolders and nothing else; run/ is shared with the proxy account's group (setgid, so new
 * files inherit it) because proxy sessions connect to the repository service's socket inside.
 */
export async function ensureDataDir(config: Config, accounts: { proxy: Account; storage: Account }): Promise<string[]> {
  const p = config.paths;
  const { storage, proxy } = accounts;
  const changes: Array<string | undefined> = [];
  changes.push(ensureDir(config.dataDir, 0o711, 0, 0));
  if (MasterKey.ensure(p.masterKey, { uid: storage.uid, gid: storage.gid })) changes.push('created master.key');
  changes.push(ensureFile(p.masterKey, 0o600, storage.uid, storage.gid));
  // The server's client key is read by the storage worker too, which pushes the job folder to
  // the client (activities/client-files.ts): root's, readable by the storage account's group.
  if ((await ensureServerKey(config.ssh.keyPath)).created) changes.push(`created the server key ${config.ssh.keyPath}`);
  changes.push(ensureDir(p.sshDir, 0o750, 0, storage.gid));
  changes.push(ensureFile(config.ssh.keyPath, 0o640, 0, storage.gid));
  if (dirname(config.ssh.keyPath) !== p.sshDir) changes.push(ensureDir(dirname(config.ssh.keyPath), 0o750, 0, storage.gid));
  // Searchable, not listable: the storage worker reads the sshd's public host key (the client's
  // known_hosts entry); the config and the private host key inside stay 0600.
  changes.push(ensureDir(p.sshdDir, 0o711, 0, 0));
  // setgid: the storage account is not in the proxy group, so its socket can only get that group
  // by inheriting it from the folder.
  changes.push(ensureDir(p.runDir, 0o2750, storage.uid, proxy.gid));
  changes.push(ensureDir(p.storageDir, 0o700, storage.uid, storage.gid));
  changes.push(ensureDir(p.temporalDir, 0o700, 0, 0));
  changes.push(ensureDir(p.logDir, 0o700, 0, 0));
  changes.push(ensureDir(p.adminBorgDir, 0o700, 0, 0));
  return changes.filter((c): c is string => Boolean(c)).map((c) => c.replace(`${config.dataDir}/`, '').replace(config.dataDir, '.'));
}

/**
 * The proxy (run by sshd as the proxy account) and the repository service (storage account) run
 * from this checkout: every folder above it must let other accounts through.
 */
export function unreachableFor(projectDir: string): string | undefined {
  for (let d = projectDir; ; d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0) return `${d} is not searchable by other accounts (mode ${(st.mode & 0o777).toString(8)}): the proxy and the repository service cannot run from ${projectDir}`;
    if (d === '/') return undefined;
  }
}
