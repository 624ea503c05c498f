// The baseline: stock `borg create` from the client user straight to `borg serve` over SSH
// (a plain loopback sshd, a forced `borg serve --restrict-to-path` for the client's key, as a
// repository host would set it up), repokey, lz4 — with the same ssh options and borg arguments
// that BorgCube's run script uses on the client (activities/client.ts runScript()).
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { shellCommand, shellQuote } from '../../infra/shell-quote.js';
import { runAsUser, type TimedRun } from './measure.js';
import type { ClientSshd } from '../../test/harness/sshd.js';
import type { BenchUser } from './users.js';

export interface DirectBorg {
  /** borg init (never timed); returns the repository location. */
  init(name: string): Promise<string>;
  /** Times `borg create` of `path` into `location` as the client user. */
  create(location: string, archive: string, path: string): Promise<TimedRun>;
  /** Times `borg extract` of `location::archive` as the client user, into `dir` (created, must not exist). */
  extract(location: string, archive: string, dir: string): Promise<TimedRun>;
  /** Removes the repository and the client's borg cache and security data of it. */
  remove(name: string): void;
}

export function sessionEnv(user: BenchUser): Record<string, string> {
  // What an SSH session on Debian gives a user's commands.
  return { HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/sh', PATH: '/usr/local/bin:/usr/bin:/bin' };
}

export function setupDirect(client: BenchUser, repoHost: BenchUser, sshd: ClientSshd): DirectBorg {
  const repos = join(repoHost.home, 'repos');
  repoHost.mkdir(repos);
  repoHost.authorize(client.publicKey, `command="borg serve --restrict-to-path ${repos}",restrict`);
  const knownHosts = join(client.home, '.ssh', 'known_hosts');
  client.writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
  const passFile = join(client.home, 'direct-passphrase');
  client.writeFile(passFile, 'bench-direct-passphrase-0123456789\n');
  const baseDir = join(client.home, 'direct-borg');
  const runDir = join(client.home, 'direct-run');
  client.mkdir(baseDir);
  client.mkdir(runDir);
  const rsh = shellCommand([
    'ssh', '-F', '/dev/null',
    '-i', client.privateKeyPath,
    '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
    '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4',
  ]);
  const env = {
    ...sessionEnv(client),
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    BORG_BASE_DIR: baseDir,
    BORG_PASSCOMMAND: shellCommand(['cat', passFile]),
    BORG_RSH: rsh,
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'no',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
    BORG_EXIT_CODES: 'legacy',
  };
  const sh = (script: string) => ['sh', '-c', script];
  return {
    async init(name) {
      const location = `ssh://${repoHost.name}@127.0.0.1:${sshd.port}${join(repos, name)}`;
      const r = await runAsUser(client, ['borg', 'init', '--encryption', 'repokey', location], { ...env, BORG_NEW_PASSPHRASE: 'bench-direct-passphrase-0123456789' }, client.home, 120_000);
      if (r.code !== 0) throw new Error(`direct borg init failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      return location;
    },
    async create(location, archive, path) {
      // As run.sh does it: log (JSON + progress) into a file, stdout into another, no terminal.
      const args = ['borg', 'create', '--log-json', '--progress', '--checkpoint-interval', '300', '--compression', 'lz4', `${location}::${archive}`, path];
      const r = await runAsUser(client, sh(`cd ${shellQuote(runDir)} && ${shellCommand(args)} >> borg.out 2>> borg.log < /dev/null`), env, client.home);
      if (r.code !== 0 && r.code !== 1) {
        const tail = readFileSync(join(runDir, 'borg.log'), 'utf8').split('\n').filter((l) => !l.includes('"progress')).slice(-5).join('\n');
        throw new Error(`direct borg create exited with ${r.code}:\n${tail}`);
      }
      rmSync(join(runDir, 'borg.log'), { force: true });
      rmSync(join(runDir, 'borg.out'), { force: true });
      return r;
    },
    async extract(location, archive, dir) {
      client.mkdir(dir);
      // As BorgCube's restore runs it: JSON log and progress into a file, in the target folder.
      const log = join(runDir, 'extract.log');
      const args = ['borg', 'extract', '--log-json', '--progress', `${location}::${archive}`];
      const r = await runAsUser(client, sh(`cd ${shellQuote(dir)} && ${shellCommand(args)} 2>> ${shellQuote(log)} < /dev/null`), env, client.home);
      if (r.code !== 0) {
        const tail = readFileSync(log, 'utf8').split('\n').filter((l) => !l.includes('"progress')).slice(-5).join('\n');
        throw new Error(`direct borg extract exited with ${r.code}:\n${tail}`);
      }
      rmSync(log, { force: true });
      return r;
    },
    remove(name) {
      rmSync(join(repos, name), { recursive: true, force: true });
      // The client's cache and security folders of that repository (one repository at a time).
      for (const d of ['.cache', '.config']) rmSync(join(baseDir, d), { recursive: true, force: true });
    },
  };
}
