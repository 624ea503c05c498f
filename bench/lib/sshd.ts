// The two sshd instances of a bench run, both on free loopback ports:
//  * a plain sshd that plays the client machines (key logins into bench users, sftp for the
//    worker's pushes) and, for the direct-Borg baseline, the repository host (`borg serve` as a
//    forced command);
//  * BorgCube's own sshd (infra/sshd.ts: AuthorizedKeysCommand → forced proxy command).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sshBanner, waitFor } from '../../infra/local-stack/net.js';
import { normalizeKey } from '../../infra/ssh.js';
import { prepareSshd, sshdCommand, sshdPaths } from '../../infra/sshd.js';
import { runChecked } from '../../infra/subprocess.js';
import { startManaged, type Managed } from './process.js';
import { userPrefix } from './tags.js';

export interface Sshd {
  port: number;
  /** "ssh-ed25519 AAAA…" of its host key. */
  hostPublicKey: string;
  process: Managed;
}

async function launch(name: string, dir: string, port: number, tagDir: string): Promise<Sshd> {
  const [file, args] = sshdCommand({ dir });
  const proc = startManaged({ name, file, args, env: { PATH: '/usr/sbin:/usr/bin:/bin' }, logPath: join(dir, 'sshd.log'), tagDir, marker: sshdPaths(dir).config });
  try {
    await waitFor(
      `${name} on 127.0.0.1:${port}`,
      async () => {
        if (!proc.alive()) throw new Error(`${name} exited: ${proc.tail(5)}`);
        return sshBanner('127.0.0.1', port, 1000);
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { port, hostPublicKey: normalizeKey(readFileSync(sshdPaths(dir).hostPublicKey, 'utf8')), process: proc };
}

/** The client machines' sshd: public-key logins into bench users, internal sftp. */
export async function startPlainSshd(dir: string, tagDir: string): Promise<Sshd> {
  const port = await freePort();
  const p = sshdPaths(dir);
  await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'borgcube-bench-client', '-f', p.hostKey]);
  writeFileSync(
    p.config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${p.hostKey}`,
      `PidFile ${p.pidFile}`,
      `AllowUsers ${userPrefix}*`,
      'PermitRootLogin no',
      'AuthenticationMethods publickey',
      'PubkeyAuthentication yes',
      'AuthorizedKeysFile .ssh/authorized_keys',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes yes',
      'Subsystem sftp internal-sftp',
      'X11Forwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      'MaxStartups 100:30:200',
      'MaxSessions 32',
      'LogLevel INFO',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await runChecked('mkdir', ['-p', '/run/sshd']);
  await runChecked('/usr/sbin/sshd', ['-t', '-f', p.config]);
  return launch('client sshd', dir, port, tagDir);
}

/** BorgCube's sshd for a data dir, configured exactly as the local stack configures it. */
export async function startBorgcubeSshd(o: { dir: string; port: number; proxyUser: string; storageSocket: string; authorizedKeysScript: string; tagDir: string }): Promise<Sshd> {
  await prepareSshd({
    dir: o.dir,
    port: o.port,
    listenAddress: '127.0.0.1',
    proxyUser: o.proxyUser,
    nodePath: process.execPath,
    authorizedKeysScript: o.authorizedKeysScript,
    storageSocket: o.storageSocket,
    logLevel: 'INFO',
  });
  return launch('BorgCube sshd', o.dir, o.port, o.tagDir);
}
