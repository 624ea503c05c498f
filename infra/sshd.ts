// BorgCube's own sshd instance (DESIGN.md §2, §3 step 3): the only door into the repositories.
// Clients log in as the proxy account with a per-job key that sshd learns from the repository
// service through AuthorizedKeysCommand; that answer carries the forced command (the proxy) and
// `restrict`. Nothing else is possible on this sshd: no passwords, no files, no forwarding, no
// shell, no sftp. The host's main sshd is not touched.
import { existsSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { runChecked } from './subprocess.js';

export interface SshdInstance {
  /** Folder holding sshd_config, the host key and the pid file (root, 0700). */
  dir: string;
  port: number;
  listenAddress: string;
  proxyUser: string;
  /** Absolute path of node and of the compiled AuthorizedKeysCommand script. */
  nodePath: string;
  authorizedKeysScript: string;
  /** The repository service's proxy socket, passed to the AuthorizedKeysCommand. */
  storageSocket: string;
  logLevel?: 'QUIET' | 'FATAL' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG' | 'DEBUG3';
}

export function sshdPaths(dir: string) {
  return {
    config: join(dir, 'sshd_config'),
    hostKey: join(dir, 'ssh_host_ed25519_key'),
    hostPublicKey: join(dir, 'ssh_host_ed25519_key.pub'),
    pidFile: join(dir, 'sshd.pid'),
  };
}

/**
 * sshd tokens: %u user, %f the key's SHA256 fingerprint — not %k: the AuthorizedKeysCommand's
 * argv is visible to every local account in `ps`, and the key itself is what a session's auth
 * info is checked against. Arguments are fixed words (no client data).
 */
export function renderSshdConfig(i: SshdInstance): string {
  const p = sshdPaths(i.dir);
  for (const v of [i.nodePath, i.authorizedKeysScript, i.storageSocket, i.dir]) {
    if (!/^\/[A-Za-z0-9._/-]+$/.test(v)) throw new Error(`${v}: sshd paths must be plain absolute paths`);
  }
  return [
    '# Written by BorgCube (infra/sshd.ts); regenerated at every start.',
    `Port ${i.port}`,
    `ListenAddress ${i.listenAddress}`,
    `HostKey ${p.hostKey}`,
    `PidFile ${p.pidFile}`,
    `AllowUsers ${i.proxyUser}`,
    'PermitRootLogin no',
    'AuthenticationMethods publickey',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'UsePAM no',
    'AuthorizedKeysFile none',
    `AuthorizedKeysCommand ${i.nodePath} ${i.authorizedKeysScript} --socket ${i.storageSocket} %u %f`,
    `AuthorizedKeysCommandUser ${i.proxyUser}`,
    // The proxy reads which key authenticated the session from $SSH_USER_AUTH and has the
    // repository service check it against the job again (the forced command alone is not trusted).
    'ExposeAuthInfo yes',
    'PermitTTY no',
    'PermitUserRC no',
    'PermitUserEnvironment no',
    'PermitTunnel no',
    'AllowTcpForwarding no',
    'AllowStreamLocalForwarding no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'GatewayPorts no',
    'DisableForwarding yes',
    'PrintMotd no',
    'PrintLastLog no',
    'MaxSessions 1',
    'MaxAuthTries 3',
    'LoginGraceTime 30',
    'MaxStartups 64:30:256',
    // Unauthenticated attempts per source address: at most this many connections at once, each
    // trying one key at a time, and a refused key is answered only after 2 s
    // (proxy/storage/authorized-keys.ts): at most 12 refused keys per second per address. Not
    // lower: many clients behind one NAT log in at the same scheduled minute, and an honest login
    // holds its slot for the seconds the AuthorizedKeysCommand takes on a loaded server.
    'PerSourceMaxStartups 24',
    'PerSourceNetBlockSize 32:128',
    'ClientAliveInterval 30',
    'ClientAliveCountMax 4',
    'StrictModes yes',
    `LogLevel ${i.logLevel ?? 'INFO'}`,
    '',
  ].join('\n');
}

/** Writes the config and creates the host key if missing; returns the config path. */
export async function prepareSshd(i: SshdInstance): Promise<string> {
  const p = sshdPaths(i.dir);
  // Searchable by the storage account, which hands the public host key to clients (their
  // known_hosts entry for this sshd); nothing in it can be listed, the rest is 0600.
  mkdirSync(i.dir, { recursive: true, mode: 0o711 });
  chmodSync(i.dir, 0o711);
  if (!existsSync(p.hostKey)) await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'borgcube-sshd', '-f', p.hostKey]);
  chmodSync(p.hostPublicKey, 0o644);
  writeFileSync(p.config, renderSshdConfig(i), { mode: 0o600 });
  // sshd's privilege separation directory; systemd normally creates it.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  await runChecked('/usr/sbin/sshd', ['-t', '-f', p.config]);
  return p.config;
}

/** argv to run the instance in the foreground, logging to stderr (for a supervisor). */
export function sshdCommand(i: Pick<SshdInstance, 'dir'>): [string, string[]] {
  return ['/usr/sbin/sshd', ['-D', '-e', '-f', sshdPaths(i.dir).config]];
}
