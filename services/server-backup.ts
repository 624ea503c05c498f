// Backing up BorgCube itself, and restoring it onto a new server. What the repositories cannot
// tell again: the database (clients, their pinned host keys, policies, users, the sealed keys and
// passphrases, the archive records), the master key that opens those secrets, the server's SSH key
// that clients authorize, the host key of BorgCube's sshd, and the configuration. Not included,
// because it is rebuilt from the repositories or is transient: <data dir>/storage (chunk indexes,
// files caches, catalogs — the AES-CTR counters of the real key are bounded by each repository's
// own nonce file), the Temporal dev server's state (schedules come back with `policy sync`), logs.
//
// The assumption of the restore: the repositories survived on their own disk (or were restored
// from their own copies) at the paths the backup lists.
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { z } from 'zod';
import { createDatabase, createDb, databaseNameOf, dropDatabase, inspectDatabase, renameDatabase } from '../db/client.js';
import { listClients } from '../db/queries/clients.js';
import { getRepositorySecrets, listRepositories, repositorySecretContext } from '../db/queries/repositories.js';
import { configVariables, type Config } from '../infra/config.js';
import { pgDump, pgRestore, pgRestoreList, pgToolVersion } from '../infra/pg-tools.js';
import { MasterKey } from '../infra/secrets.js';
import { shellQuote } from '../infra/shell-quote.js';
import { sshdPaths } from '../infra/sshd.js';
import type { ServiceDeps } from './deps.js';
import { conflict, failed, invalid } from './errors.js';
import { serverBorgVersion } from './recovery-kit.js';

export const serverBackupFormat = 'borgcube-server-backup';

/** The files of a server backup, by their name in the backup folder. */
const secretFiles = ['master.key', 'ssh/id_ed25519', 'ssh/id_ed25519.pub', 'sshd/ssh_host_ed25519_key', 'sshd/ssh_host_ed25519_key.pub'] as const;
type SecretFile = (typeof secretFiles)[number];
const dumpFile = 'database.dump';
const configFile = 'config.env';

const manifestSchema = z.object({
  format: z.literal(serverBackupFormat),
  version: z.literal(1),
  createdAt: z.string(),
  createdBy: z.string(),
  host: z.string(),
  borgcubeVersion: z.string(),
  borgVersion: z.string(),
  pgDumpVersion: z.string(),
  postgresVersion: z.string(),
  storageHost: z.string(),
  dataDir: z.string(),
  database: z.object({ name: z.string(), migrations: z.number().int(), repositories: z.number().int(), clients: z.number().int() }),
  repositories: z.array(z.object({ name: z.string(), path: z.string(), storageHost: z.string(), borgId: z.string() })),
  files: z.array(z.object({ name: z.string(), size: z.number().int(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
});
export type ServerBackupManifest = z.infer<typeof manifestSchema>;

/** Where each backed-up key lives on this server (config.ts dataPaths, BORGCUBE_SSH_KEY). */
function livePaths(config: Config): Record<SecretFile, string> {
  const sshd = sshdPaths(config.paths.sshdDir);
  return {
    'master.key': config.paths.masterKey,
    'ssh/id_ed25519': config.ssh.keyPath,
    'ssh/id_ed25519.pub': `${config.ssh.keyPath}.pub`,
    'sshd/ssh_host_ed25519_key': sshd.hostKey,
    'sshd/ssh_host_ed25519_key.pub': sshd.hostPublicKey,
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The package's version, from the package.json above this file (source or dist/). */
function borgcubeVersion(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); d !== dirname(d); d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version?: string }).version ?? 'unknown';
  }
  return 'unknown';
}

/** New file, 0600 from the start; never over an existing one. */
function writeNew(path: string, content: Buffer | string, mode = 0o600): void {
  const fd = openSync(path, 'wx', mode);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, mode);
}

/**
 * DIR must be new (its parent exists) or an empty folder, and writable: checked before anything
 * is dumped. Returns the undo that removes what the backup wrote.
 */
function prepareBackupDir(dir: string): () => void {
  let created = false;
  if (existsSync(dir)) {
    const st = lstatSync(dir);
    if (!st.isDirectory()) throw invalid(`${dir} exists and is not a folder; give a new or empty folder`);
    if (readdirSync(dir).length > 0) throw invalid(`${dir} is not empty; give a new or empty folder (a server backup never writes over another)`);
  } else {
    try {
      mkdirSync(dir, { mode: 0o700 });
      created = true;
    } catch (err) {
      throw invalid(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  try {
    chmodSync(dir, 0o700);
    const probe = join(dir, '.write-test');
    writeNew(probe, '');
    unlinkSync(probe);
  } catch (err) {
    if (created) rmSync(dir, { recursive: true, force: true });
    throw invalid(`cannot write into ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return () => {
    if (created) rmSync(dir, { recursive: true, force: true });
    else for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
  };
}

/** The configuration as this process sees it, as `NAME='value'` lines a shell can source; the first admin's password is left out. */
function configEnvText(env: NodeJS.ProcessEnv): string {
  const lines = ['# BorgCube configuration at the time of the server backup (README: Configuration). Unset = default.'];
  for (const name of Object.keys(configVariables)) {
    if (name === 'BORGCUBE_ADMIN_PASSWORD') continue;
    const v = env[name];
    lines.push(v === undefined || v === '' ? `# ${name} unset (default ${JSON.stringify(configVariables[name as keyof typeof configVariables].def)})` : `${name}=${shellQuote(v)}`);
  }
  return `${lines.join('\n')}\n`;
}

async function databaseFacts(url: string, masterKey: MasterKey | undefined) {
  const h = createDb(url, { max: 1, applicationName: 'borgcube-server-backup' });
  try {
    const repos = await listRepositories(h.db);
    const clients = await listClients(h.db);
    const version = (await h.db.execute<{ v: string }>(sql`select version() as v`)).rows[0]?.v ?? 'unknown';
    let migrations = 0;
    try {
      migrations = Number((await h.db.execute<{ n: string }>(sql`select count(*) as n from drizzle.__drizzle_migrations`)).rows[0]?.n ?? 0);
    } catch {
      migrations = 0;
    }
    // Every repository's secrets open with this master key: the two halves belong together.
    if (masterKey) {
      for (const r of repos) {
        const s = await getRepositorySecrets(h.db, r.id);
        if (!s) continue;
        try {
          masterKey.open(s.keySealed, repositorySecretContext.key(r.id));
          masterKey.open(s.passphraseSealed, repositorySecretContext.passphrase(r.id));
        } catch {
          throw failed(`the secrets of repository ${r.name} do not open with this master key: the database and the master key do not belong together`);
        }
      }
    }
    return { repos, clients: clients.length, version, migrations };
  } finally {
    await h.close();
  }
}

export interface ServerBackupResult {
  dir: string;
  manifest: ServerBackupManifest;
}

/** `borgcube server-backup DIR`. */
export async function serverBackup(deps: Pick<ServiceDeps, 'config' | 'log'>, rawDir: string, actor: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerBackupResult> {
  const { config } = deps;
  const dir = resolve(rawDir);
  const sources = livePaths(config);
  for (const [name, path] of Object.entries(sources)) if (!existsSync(path)) throw failed(`${path} (${name}) is missing: is this a provisioned BorgCube server?`);
  const [pgDumpVersion, borgVersion] = await Promise.all([pgToolVersion('pg_dump'), serverBorgVersion(config.borg.path)]);
  const undo = prepareBackupDir(dir);
  try {
    const masterKey = MasterKey.load(sources['master.key']);
    // One snapshot of the whole database (pg_dump runs in one repeatable-read transaction); the
    // files beside it do not change while BorgCube runs (keys are created once).
    await pgDump(config.databaseUrl, join(dir, dumpFile));
    chmodSync(join(dir, dumpFile), 0o600);
    const facts = await databaseFacts(config.databaseUrl, masterKey);
    mkdirSync(join(dir, 'ssh'), { mode: 0o700 });
    mkdirSync(join(dir, 'sshd'), { mode: 0o700 });
    for (const name of secretFiles) writeNew(join(dir, name), readFileSync(sources[name]));
    writeNew(join(dir, configFile), configEnvText(env));
    const files = [dumpFile, ...secretFiles, configFile].map((name) => ({ name, size: statSync(join(dir, name)).size, sha256: sha256File(join(dir, name)) }));
    const manifest: ServerBackupManifest = {
      format: serverBackupFormat,
      version: 1,
      createdAt: new Date().toISOString(),
      createdBy: actor,
      host: hostname(),
      borgcubeVersion: borgcubeVersion(),
      borgVersion,
      pgDumpVersion,
      postgresVersion: facts.version,
      storageHost: config.storageHost,
      dataDir: config.dataDir,
      database: { name: databaseNameOf(config.databaseUrl), migrations: facts.migrations, repositories: facts.repos.length, clients: facts.clients },
      repositories: facts.repos.map((r) => ({ name: r.name, path: r.path, storageHost: r.storageHost, borgId: r.borgId })),
      files,
    };
    writeNew(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    writeNew(join(dir, 'README.txt'), restoreReadme(manifest), 0o600);
    deps.log.info({ dir, repositories: facts.repos.length, clients: facts.clients }, 'server backup written');
    return { dir, manifest };
  } catch (err) {
    undo();
    throw err;
  }
}

function restoreReadme(m: ServerBackupManifest): string {
  return [
    `BorgCube server backup of ${m.host}, ${m.createdAt} (BorgCube ${m.borgcubeVersion}, ${m.borgVersion}, ${m.postgresVersion.split(',')[0]}).`,
    'It holds the master key and the server keys: keep it as safe as the recovery kit.',
    '',
    'Restore onto a new server (README "When the server is lost"):',
    '1. Put the repositories back at their paths (their own disk, or copies):',
    ...m.repositories.map((r) => `     ${r.name}: ${r.path}`),
    '2. Check out BorgCube, run `npm start` once (it installs and creates the accounts), stop it.',
    `3. Take the configuration from config.env (BORGCUBE_STORAGE_HOST must stay ${m.storageHost}), then as root:`,
    '     set -a; . ./config.env; set +a',
    '     borgcube server-restore --replace THIS_FOLDER',
    '4. npm start; then `borgcube policy sync` (recreates the schedules in Temporal).',
    '',
  ].join('\n');
}

export interface ServerRestoreResult {
  manifest: ServerBackupManifest;
  database: string;
  /** Database and files that were in the way and were moved aside (with --replace). */
  movedAside: string[];
  /** Repository folders of the backup that are not on this server (yet). */
  missingRepositories: Array<{ name: string; path: string }>;
}

/** Reads and checks a backup folder: its manifest, every file against its checksum, the dump's table of contents. */
export async function verifyServerBackup(rawDir: string): Promise<{ dir: string; manifest: ServerBackupManifest }> {
  const dir = resolve(rawDir);
  let manifest: ServerBackupManifest;
  try {
    manifest = manifestSchema.parse(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')));
  } catch (err) {
    throw invalid(`${dir} is not a BorgCube server backup (manifest.json ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : 'is unreadable'})`);
  }
  const expected = new Set<string>([dumpFile, ...secretFiles, configFile]);
  for (const name of expected) if (!manifest.files.some((f) => f.name === name)) throw invalid(`${dir}/manifest.json lists no ${name}`);
  for (const f of manifest.files) {
    if (!expected.has(f.name)) throw invalid(`${dir}/manifest.json lists an unknown file ${f.name}`);
    const path = join(dir, f.name);
    if (!existsSync(path)) throw invalid(`${path} is missing; nothing was restored`);
    if (sha256File(path) !== f.sha256) throw invalid(`${path} does not match its checksum in manifest.json (damaged or altered); nothing was restored`);
  }
  try {
    await pgRestoreList(join(dir, dumpFile));
  } catch (err) {
    throw invalid(`${join(dir, dumpFile)} is not a readable dump (${(err as Error).message}); nothing was restored`);
  }
  return { dir, manifest };
}

/**
 * `borgcube server-restore DIR [--replace]`. Everything is checked before anything changes; the
 * database is restored under its name (an existing one is renamed aside with --replace, never
 * dropped) and checked against the backup's master key before the keys are written.
 */
export async function serverRestore(deps: Pick<ServiceDeps, 'config' | 'log' | 'storageAccount'>, rawDir: string, opts: { replace: boolean }): Promise<ServerRestoreResult> {
  const { config } = deps;
  const { dir, manifest } = await verifyServerBackup(rawDir);
  if (manifest.storageHost !== config.storageHost) {
    throw invalid(`the backup is of storage host ${manifest.storageHost}, this server is ${config.storageHost}: set BORGCUBE_STORAGE_HOST=${manifest.storageHost} (config.env has it) and run the restore again`);
  }
  const account = deps.storageAccount();
  const backupKey = readFileSync(join(dir, 'master.key'));
  const masterKey = MasterKey.fromBytes(backupKey);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');

  // What is in the way: a database with tables, key files that differ from the backup's.
  const dbName = databaseNameOf(config.databaseUrl);
  const db = await inspectDatabase(config.databaseUrl);
  const targets = livePaths(config);
  const differing = secretFiles.filter((name) => existsSync(targets[name]) && sha256(readFileSync(targets[name])) !== sha256(readFileSync(join(dir, name))));
  if (!opts.replace) {
    if (db.exists && db.tables > 0) throw conflict(`the database ${dbName} is not empty; stop BorgCube and pass --replace (it is renamed to ${dbName}_before_restore_${stamp}, not dropped), or restore into an empty database`);
    if (differing.length) throw conflict(`${targets[differing[0]!]} exists and differs from the backup's; pass --replace to move it aside (to .before-restore-${stamp})`);
  }

  const movedAside: string[] = [];
  const aside = `${dbName}_before_restore_${stamp}`.slice(0, 63);
  let renamed = false;
  if (db.exists && db.tables > 0) {
    try {
      await renameDatabase(config.databaseUrl, dbName, aside);
    } catch (err) {
      throw conflict(`cannot rename the database ${dbName} aside (${(err as Error).message}); stop every BorgCube process first`);
    }
    renamed = true;
    movedAside.push(`database ${dbName} → ${aside}`);
  } else if (db.exists) {
    await dropDatabase(config.databaseUrl, dbName); // empty: nothing to keep
  }
  const undoDatabase = async () => {
    await dropDatabase(config.databaseUrl, dbName);
    if (renamed) await renameDatabase(config.databaseUrl, aside, dbName);
  };
  let facts: Awaited<ReturnType<typeof databaseFacts>>;
  try {
    await createDatabase(config.databaseUrl, dbName);
    await pgRestore(config.databaseUrl, dbName, join(dir, dumpFile));
    facts = await databaseFacts(config.databaseUrl, masterKey);
  } catch (err) {
    await undoDatabase();
    throw err instanceof Error && !(err instanceof z.ZodError) ? failed(`${err.message}; the database was left as it was`) : err;
  }

  // The keys: each written beside its place and renamed over it, so a reader never sees half a key.
  mkdirSync(config.dataDir, { recursive: true, mode: 0o711 });
  for (const name of secretFiles) {
    const target = targets[name];
    const content = readFileSync(join(dir, name));
    if (existsSync(target) && sha256(readFileSync(target)) === sha256(content)) continue;
    const folder = dirname(target);
    if (!existsSync(folder)) mkdirSync(folder, { recursive: true, mode: 0o700 });
    if (existsSync(target)) {
      renameSync(target, `${target}.before-restore-${stamp}`);
      movedAside.push(`${target} → ${target}.before-restore-${stamp}`);
    }
    const tmp = `${target}.restore-${process.pid}`;
    rmSync(tmp, { force: true });
    writeNew(tmp, content, name.endsWith('.pub') ? 0o644 : 0o600);
    if (name === 'master.key') chownSync(tmp, account.uid, account.gid);
    renameSync(tmp, target);
  }
  const missingRepositories = manifest.repositories.filter((r) => r.storageHost === config.storageHost && !existsSync(join(r.path, 'config'))).map((r) => ({ name: r.name, path: r.path }));
  deps.log.info({ dir, database: dbName, repositories: facts.repos.length, clients: facts.clients, movedAside }, 'server restored');
  return { manifest, database: dbName, movedAside, missingRepositories };
}
