// The recovery kit: per repository, what plain borg needs when BorgCube itself is gone — the key
// as `borg key export` writes it, the passphrase, where the repository lives and which borg wrote
// it. The secrets leave their sealed form only here (and in the code that runs borg): the kit is
// built in memory, handed to the caller (a 0600 file of the CLI, a download of the console), and
// never logged; every export is an audit event.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { insertAuditEvent } from '../db/queries/audit.js';
import { baseEnv, run } from '../infra/subprocess.js';
import type { ServiceDeps } from './deps.js';
import { failed } from './errors.js';
import { getRepository, listRepositories, openRepositorySecrets, type RepositoryView } from './repositories.js';

export const recoveryKitFormat = 'borgcube-recovery-kit';

export interface RecoveryKitRepository {
  name: string;
  /** Borg's repository id (hex), the one `BORG_KEY <id>` names. */
  borgId: string;
  encryption: RepositoryView['encryption'];
  storageHost: string;
  /** The repository folder on its storage host: what `borg` takes once the folder is reachable. */
  path: string;
  /** The same repository over SSH from another machine (any account there that can read the folder). */
  sshUrl: string;
  /** `borg key export` output: `BORG_KEY <id>` and the key blob. */
  keyExport: string;
  passphrase: string;
}

export interface RecoveryKit {
  format: typeof recoveryKitFormat;
  version: 1;
  createdAt: string;
  createdBy: string;
  /** `borg --version` of the server's borg, which wrote these repositories. */
  borgVersion: string;
  repositories: RecoveryKitRepository[];
  instructions: string[];
}

/**
 * What `borg key export` prints (borg/crypto/keymanager.py get_keyfile_data): for repokey the
 * header and the key blob from the repository config; a key file already is that text.
 */
export function keyExportText(repo: Pick<RepositoryView, 'encryption' | 'borgId'>, keyText: string): string {
  if (repo.encryption.startsWith('keyfile')) {
    if (!keyText.startsWith(`BORG_KEY ${repo.borgId}`)) throw failed(`the stored key file of this repository does not name its id ${repo.borgId}`);
    return keyText.endsWith('\n') ? keyText : `${keyText}\n`;
  }
  const blob = keyText.trim();
  return `BORG_KEY ${repo.borgId}\n${blob}\n`;
}

export async function serverBorgVersion(borgPath: string): Promise<string> {
  const r = await run(borgPath, ['--version'], { env: baseEnv(), timeoutMs: 30_000 });
  const v = r.stdout.toString().trim();
  if (r.code !== 0 || !v) throw failed(`${borgPath} --version failed (exit ${r.code})`);
  return v;
}

/** The SSH form of a storage host's repository; IPv6 hosts in brackets. */
function sshUrlOf(host: string, path: string): string {
  return `ssh://root@${host.includes(':') ? `[${host}]` : host}${path}`;
}

/**
 * Builds the kit for one repository (`repository` set) or all, and records who took it. An
 * unknown repository fails before anything is opened or recorded.
 */
export async function buildRecoveryKit(
  deps: Pick<ServiceDeps, 'db' | 'config' | 'masterKey' | 'log'>,
  opts: { repository?: string; actor: { name: string; userId: string | null } },
): Promise<RecoveryKit> {
  const repos = opts.repository !== undefined ? [await getRepository(deps, opts.repository)] : await listRepositories(deps);
  const borgVersion = await serverBorgVersion(deps.config.borg.path);
  // The storage host's name as other machines know it: the configured one is a queue name and
  // may be an alias; the machine's host name is what ssh reaches.
  const sshHost = deps.config.storageHost === hostname().split('.')[0] ? hostname() : deps.config.storageHost;
  const repositories: RecoveryKitRepository[] = [];
  for (const repo of repos) {
    const { keyText, passphrase } = await openRepositorySecrets(deps, repo);
    repositories.push({
      name: repo.name,
      borgId: repo.borgId,
      encryption: repo.encryption,
      storageHost: repo.storageHost,
      path: repo.path,
      sshUrl: sshUrlOf(sshHost, repo.path),
      keyExport: keyExportText(repo, keyText),
      passphrase,
    });
  }
  const kit: RecoveryKit = {
    format: recoveryKitFormat,
    version: 1,
    createdAt: new Date().toISOString(),
    createdBy: opts.actor.name,
    borgVersion,
    repositories,
    instructions: kitInstructions(),
  };
  await insertAuditEvent(deps.db, {
    userId: opts.actor.userId,
    actor: opts.actor.name,
    action: 'recovery-kit.export',
    target: opts.repository ?? '*',
    detail: { repositories: repositories.map((r) => r.name), fingerprint: kitFingerprint(kit) },
  });
  // Names only: the kit's content never reaches a log.
  deps.log.info({ actor: opts.actor.name, repositories: repositories.map((r) => r.name) }, 'recovery kit exported');
  return kit;
}

/** A short digest of the secrets, so that the audit log can tell two exports apart without holding them. */
function kitFingerprint(kit: RecoveryKit): string {
  const h = createHash('sha256');
  for (const r of kit.repositories) h.update(`${r.borgId}\0${r.keyExport}\0${r.passphrase}\0`);
  return h.digest('hex').slice(0, 16);
}

function kitInstructions(): string[] {
  return [
    'Keep this kit offline (printed, or on a medium in a safe): it opens every backup it lists.',
    'With borg 1.2 on any machine and the repository folder (its disk mounted, a copy, or over ssh):',
    '1. Save the key block of the repository (from the line "BORG_KEY" to the end of the block) as a file, e.g. repo.key.',
    "2. export BORG_PASSPHRASE='<passphrase>'   (or put it into a file and use BORG_PASSCOMMAND='cat FILE')",
    '3. keyfile and keyfile-blake2 repositories: borg key import REPO repo.key   (repokey repositories keep their key inside; import it only if their config file was lost: same command)',
    '4. borg list REPO; borg extract REPO::ARCHIVE [PATH…]   (REPO is the folder, e.g. /mnt/main, or the ssh:// URL)',
    'If borg says the repository is locked (a lock left by the lost server, whose borg held it open), and no BorgCube server uses it any more: borg break-lock REPO',
    'A repository moved to another path or machine makes borg ask once whether that is fine: answer yes, or set BORG_RELOCATED_REPO_ACCESS_IS_OK=yes.',
  ];
}

/** The printable form: the same content, laid out for paper, with the instructions first. */
export function recoveryKitText(kit: RecoveryKit): string {
  const out: string[] = [
    'BorgCube recovery kit',
    `created ${kit.createdAt} by ${kit.createdBy}`,
    `written by ${kit.borgVersion}`,
    '',
    ...kit.instructions,
    '',
  ];
  for (const r of kit.repositories) {
    out.push(
      `=== repository ${r.name} ===`,
      `borg id     ${r.borgId}`,
      `encryption  ${r.encryption}`,
      `path        ${r.path}   (on storage host ${r.storageHost})`,
      `over ssh    ${r.sshUrl}`,
      `passphrase  ${r.passphrase}`,
      'key (borg key export):',
      r.keyExport.trimEnd(),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
