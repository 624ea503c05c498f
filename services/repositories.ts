// Repositories: create (borg init on this storage host), list, show. The CLI and the JSON API
// both call these functions; secrets are sealed before they reach the database and never leave it
// through here.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, chownSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { withAdvisoryLock } from '../db/client.js';
import { insertAuditEvent } from '../db/queries/audit.js';
import * as repos from '../db/queries/repositories.js';
import { repositorySecretContext } from '../db/queries/repositories.js';
import { borgErrorLine, initRepository, parseRepositoryConfig, repoLocation, runBorg } from '../infra/borg-cli.js';
import { listLiveArchives, replaceArchiveBorgId } from '../db/queries/archives.js';
import { acquireRepositoryLease, repairRepositoryStorage, type RepairOutcome } from '../proxy/storage/api.js';
import { admitAndWake } from './admission.js';
import type { ServiceDeps } from './deps.js';
import { storageHostForNewRepository } from './storage-hosts.js';
import { conflict, failed, invalid, notFound, uniqueViolation } from './errors.js';
import { absolutePathSchema, nameSchema } from './validation.js';

export const encryptionModes = ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2'] as const;

export const addRepositoryInput = z.object({
  name: nameSchema,
  path: absolutePathSchema,
  encryption: z.enum(encryptionModes).default('repokey'),
  /** The storage host that holds it: this one (the default) — another's are created there (services/storage-hosts.ts). */
  storageHost: z.string().min(1).max(63).optional(),
});
export type AddRepositoryInput = z.input<typeof addRepositoryInput>;

export type RepositoryView = repos.RepositoryRow;

/** The folder where server-side borg keeps its cache and security data (root-owned, 0700). */
export function adminBorgDir(deps: Pick<ServiceDeps, 'config'>) {
  return deps.config.paths.adminBorgDir;
}

export async function addRepository(deps: ServiceDeps, rawInput: AddRepositoryInput): Promise<RepositoryView> {
  const input = addRepositoryInput.parse(rawInput);
  // One add per path at a time, checks included: a second add of the same path (a double-clicked
  // form) found the first one's folder still empty while its `borg init` ran, failed on it, and
  // its undo then emptied the first one's new repository.
  return withAdvisoryLock(deps.db, `borgcube:repository-path:${deps.config.storageHost}:${input.path}`, (db) => addRepositoryLocked({ ...deps, db }, input));
}

async function addRepositoryLocked(deps: ServiceDeps, input: z.output<typeof addRepositoryInput>): Promise<RepositoryView> {
  const { db, config } = deps;
  await storageHostForNewRepository(deps, input.storageHost);
  if (await repos.findRepositoryByName(db, input.name)) throw conflict(`repository ${JSON.stringify(input.name)} already exists`);
  const samePath = await repos.findRepositoryByPath(db, config.storageHost, input.path);
  if (samePath) throw conflict(`${input.path} is already the repository ${JSON.stringify(samePath.name)}`);
  if (input.path === '/' || isInside(input.path, config.dataDir)) throw invalid(`path: ${input.path} cannot hold a repository`);

  const account = deps.storageAccount();
  const undo = prepareFolder(input.path, account);
  try {
    const passphrase = randomBytes(32).toString('base64url');
    const inv = { borgPath: config.borg.path, baseDir: adminBorgDir(deps), passphrase, serveAs: account };
    const { result, keysDir } = await initRepository(inv, repoLocation(inv, input.path), input.encryption);
    let keyText: string;
    let borgId: string;
    try {
      if (result.code !== 0) throw failed(`borg init failed: ${borgErrorLine(result.stderr) || `exit ${result.code}`}`);
      const cfg = parseRepositoryConfig(readFileSync(join(input.path, 'config'), 'utf8'));
      borgId = cfg.id;
      if (input.encryption.startsWith('keyfile')) {
        const files = readdirSync(keysDir);
        if (files.length !== 1) throw failed(`borg init left ${files.length} key files, expected 1`);
        keyText = readFileSync(join(keysDir, files[0]!), 'utf8');
      } else {
        if (!cfg.key) throw failed('borg init wrote no key into the repository config');
        keyText = cfg.key;
      }
    } finally {
      rmSync(keysDir, { recursive: true, force: true });
    }

    const mk = deps.masterKey();
    const id = crypto.randomUUID();
    try {
      const row = await repos.insertRepository(db, {
        id,
        name: input.name,
        path: input.path,
        storageHost: config.storageHost,
        encryption: input.encryption,
        borgId,
        keySealed: mk.seal(keyText, repositorySecretContext.key(id)),
        passphraseSealed: mk.seal(passphrase, repositorySecretContext.passphrase(id)),
      });
      deps.log.info({ repository: row.name, path: row.path, encryption: row.encryption }, 'repository created');
      return row;
    } catch (err) {
      if (uniqueViolation(err)) throw conflict(`repository ${JSON.stringify(input.name)} or path ${input.path} already exists`);
      throw err;
    }
  } catch (err) {
    undo();
    throw err;
  }
}

export async function listRepositories(deps: Pick<ServiceDeps, 'db'>): Promise<RepositoryView[]> {
  return repos.listRepositories(deps.db);
}

export async function getRepository(deps: Pick<ServiceDeps, 'db'>, name: string): Promise<RepositoryView> {
  const row = await repos.findRepositoryByName(deps.db, name);
  if (!row) throw notFound('repository', name);
  return row;
}

/** The real key and passphrase of a repository, for code that runs borg with them. */
export async function openRepositorySecrets(deps: Pick<ServiceDeps, 'db' | 'masterKey'>, repo: RepositoryView): Promise<{ keyText: string; passphrase: string }> {
  const s = await repos.getRepositorySecrets(deps.db, repo.id);
  if (!s) throw notFound('repository', repo.name);
  const mk = deps.masterKey();
  return {
    keyText: mk.openText(s.keySealed, repositorySecretContext.key(repo.id)),
    passphrase: mk.openText(s.passphraseSealed, repositorySecretContext.passphrase(repo.id)),
  };
}

type AdminBorgIo = { onStdout: (c: Buffer) => void; onStderr: (c: Buffer) => void; cwd?: string; signal?: AbortSignal; confirmRepair?: boolean };

/**
 * Runs `fn` with what borg on the server needs for the repository (real key, as the storage
 * account) while holding its lock: the repository service holds it while backups run, so this
 * waits for its turn.
 */
async function withAdminBorg<T>(
  deps: ServiceDeps,
  name: string,
  io: AdminBorgIo,
  fn: (repo: RepositoryView, secrets: { keyText: string; passphrase: string }, run: (args: string[]) => Promise<number>) => Promise<T>,
): Promise<T> {
  const repo = await getRepository(deps, name);
  const secrets = await openRepositorySecrets(deps, repo);
  const inv = {
    borgPath: deps.config.borg.path,
    baseDir: adminBorgDir(deps),
    passphrase: secrets.passphrase,
    keyFileText: repo.encryption.startsWith('keyfile') ? secrets.keyText : undefined,
    serveAs: deps.storageAccount(),
  };
  // No terminal reaches borg here, so its confirmation prompts (check --repair, delete of a whole
  // repository) are answered "no" rather than left to read an empty stdin.
  const env = { BORG_REPO: repoLocation(inv, repo.path), BORG_CHECK_I_KNOW_WHAT_I_AM_DOING: io.confirmRepair ? 'YES' : 'NO', BORG_DELETE_I_KNOW_WHAT_I_AM_DOING: 'NO' };
  const lease = await acquireRepositoryLease(deps.config.paths.controlSocket, repo.id, {
    signal: io.signal,
    onWaiting: () => io.onStderr(Buffer.from('borgcube: waiting for running jobs of this repository to finish…\n')),
  });
  const run = async (args: string[]) => {
    const r = await runBorg({ ...inv, env }, args, { cwd: io.cwd, signal: io.signal, onStdout: io.onStdout, onStderr: io.onStderr, maxOutput: 0 });
    return r.code ?? 128 + 9;
  };
  try {
    return await fn(repo, secrets, run);
  } finally {
    lease.release();
  }
}

/**
 * `borgcube borg REPO -- ARGS`: borg on the server with the real key. BORG_REPO names the
 * repository so that `::archive` and location-less commands (list, info, check) work.
 */
export async function runAdminBorg(deps: ServiceDeps, name: string, args: string[], io: AdminBorgIo): Promise<number> {
  return withAdminBorg(deps, name, io, (_repo, _secrets, run) => run(args));
}

/**
 * `borgcube repo repair`: `borg check --repair` with the real key, the one way BorgCube repairs a
 * repository — started by an admin who typed its name, never by a schedule or a failed check
 * (a repair can drop archives it cannot fix). Under the same lock, the archives the repair
 * rewrote are re-signed and the server's caches of the old archives dropped (proxy/storage/
 * repair.ts), and the records follow the archives' new ids. Recorded in the audit log.
 */
export async function repairRepository(
  deps: ServiceDeps,
  name: string,
  opts: { verifyData: boolean; actor: string },
  io: { onStdout: (c: Buffer) => void; onStderr: (c: Buffer) => void; signal?: AbortSignal },
): Promise<RepairOutcome> {
  const repo = await getRepository(deps, name);
  await insertAuditEvent(deps.db, { userId: null, actor: opts.actor, action: 'repository.repair', target: repo.name, detail: { path: repo.path, verifyData: opts.verifyData } });
  deps.log.warn({ repository: repo.name, actor: opts.actor }, 'repository repair started');
  const outcome = await withAdminBorg(deps, name, { ...io, confirmRepair: true }, async (r, secrets, run) => {
    const recorded = new Map((await listLiveArchives(deps.db, r.id, 10_000_000)).map((a) => [a.name, a.borgId]));
    const repaired = await repairRepositoryStorage(
      {
        repositoryId: r.id,
        path: r.path,
        encryption: r.encryption,
        keyText: secrets.keyText,
        passphrase: secrets.passphrase,
        borgPath: deps.config.borg.path,
        runAs: deps.storageAccount(),
        nonceFile: join(adminBorgDir(deps), `repair-nonce-${r.id}`),
        log: deps.log.child({ repository: r.name }),
        paths: deps.config.paths,
        recorded,
      },
      () => run(['check', '--repair', ...(opts.verifyData ? ['--verify-data'] : []), '--progress']),
    );
    // The console, prune and the clients' dedup scope find archives by id: follow the new ones
    // before the lease goes, or a prune waiting for it would take the old ids' rows as pruned.
    for (const c of repaired.changed) await replaceArchiveBorgId(deps.db, repo.id, c.before, c.after);
    return repaired;
  });
  if (outcome.changed.length || outcome.resigned.length || outcome.untouchedBadTam.length) {
    deps.log.warn({ repository: repo.name, changed: outcome.changed.length, resigned: outcome.resigned.length, untouchedBadTam: outcome.untouchedBadTam.length }, 'repository repair rewrote archives');
  }
  return outcome;
}

function isInside(path: string, dir: string) {
  return path === dir || path.startsWith(`${dir.replace(/\/+$/, '')}/`);
}

/**
 * Makes `path` an empty folder owned by the storage account (0700), creating missing parents.
 * Returns the undo: it removes what this call created, or empties a folder that was empty before.
 */
function prepareFolder(path: string, account: { uid: number; gid: number }): () => void {
  let existed = false;
  if (existsSync(path)) {
    const st = lstatSync(path);
    if (!st.isDirectory()) throw invalid(`path: ${path} exists and is not a folder`);
    if (readdirSync(path).length > 0) throw invalid(`path: ${path} exists and is not empty`);
    existed = true;
  }
  // The topmost folder this call creates; removing it removes everything below.
  let topCreated: string | undefined;
  if (!existed) {
    let p = path;
    while (!existsSync(dirname(p)) && dirname(p) !== p) p = dirname(p);
    topCreated = p;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    mkdirSync(path, { mode: 0o700 });
  }
  chownSync(path, account.uid, account.gid);
  chmodSync(path, 0o700);
  return () => {
    if (topCreated) rmSync(topCreated, { recursive: true, force: true });
    else for (const f of readdirSync(path)) rmSync(join(path, f), { recursive: true, force: true });
  };
}

/** `--max-backups N` or `default` (null: the server's BORGCUBE_MAX_BACKUPS_PER_REPOSITORY). */
export const updateRepositoryInput = z.object({
  maxConcurrentBackups: z.union([z.number().int().min(1).max(9999), z.null()]).describe('backups that may run into it at once; null = the server default'),
});

/**
 * Changes a repository's settings (its backup limit). A raised limit admits queued backups at
 * once instead of at the next backup's end.
 */
export async function updateRepository(deps: Pick<ServiceDeps, 'db' | 'config' | 'log' | 'temporal'>, name: string, raw: z.input<typeof updateRepositoryInput>): Promise<RepositoryView> {
  const input = updateRepositoryInput.parse(raw);
  const repo = await getRepository(deps, name);
  const row = await repos.updateRepository(deps.db, repo.id, { maxConcurrentBackups: input.maxConcurrentBackups });
  if (!row) throw notFound('repository', name);
  await admitAndWake(deps, row.storageHost);
  return row;
}

/** The backup limit that applies to a repository, and where it comes from. */
export function effectiveBackupLimit(deps: Pick<ServiceDeps, 'config'>, repo: Pick<RepositoryView, 'maxConcurrentBackups'>): { limit: number; source: 'repository' | 'default' } {
  return repo.maxConcurrentBackups !== null ? { limit: repo.maxConcurrentBackups, source: 'repository' } : { limit: deps.config.queue.maxBackupsPerRepository, source: 'default' };
}
