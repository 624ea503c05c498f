// Commands for the bad day: the recovery kit (what plain borg needs per repository), and the
// backup and restore of BorgCube's own state. They open the master key, so they run as root on
// the server — the CLI's notion of an admin (it has no console login).
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { buildRecoveryKit, recoveryKitText } from '../../services/recovery-kit.js';
import { serverBackup, serverRestore } from '../../services/server-backup.js';
import { forbidden } from '../../services/errors.js';
import { UsageError, type CliContext } from '../context.js';

/** The CLI acts with the admin's rights only for root, who can read the master key. */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw forbidden(`${what} needs root on the BorgCube server (it opens the master key)`);
}

export function cliActor(): string {
  return `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'root'}`;
}

/**
 * Writes a file that holds secrets: created new (never over an existing file) with mode 0600
 * from the start, removed again if the write fails.
 */
export function writeSecretFile(path: string, content: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new UsageError(`${path} exists already; give a new file name (a kit is never written over another file)`);
    throw new UsageError(`cannot create ${path}: ${e.code ?? e.message}`);
  }
  try {
    writeSync(fd, content);
  } catch (err) {
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  closeSync(fd);
}

export function registerRecoveryCommands(program: Command, ctx: CliContext) {
  program
    .command('recovery-kit')
    .description('export what plain borg needs to open each repository without BorgCube: key (as `borg key export` writes it), passphrase, path, borg version; store it offline')
    .option('--repo <name>', 'only this repository (default: all)')
    .option('--out <file>', 'write the kit into this new file (mode 0600) instead of stdout')
    .option('--format <format>', 'json (a file to keep) or text (printable, with instructions)', 'json')
    .action(async (o: { repo?: string; out?: string; format: string }) => {
      if (o.format !== 'json' && o.format !== 'text') throw new UsageError('--format must be json or text');
      requireRoot('recovery-kit');
      const kit = await buildRecoveryKit(ctx.deps(), { repository: o.repo, actor: { name: cliActor(), userId: null } });
      const content = o.format === 'json' ? `${JSON.stringify(kit, null, 2)}\n` : recoveryKitText(kit);
      if (!o.out) {
        ctx.io.stdout.write(content);
        return;
      }
      const out = resolve(o.out);
      writeSecretFile(out, content);
      ctx.io.stderr.write(`wrote the recovery kit of ${kit.repositories.length} repositor${kit.repositories.length === 1 ? 'y' : 'ies'} to ${out} (mode 0600); keep it offline\n`);
    });
}

export function registerServerBackupCommands(program: Command, ctx: CliContext) {
  program
    .command('server-backup')
    .description("back up BorgCube's own state into a new or empty folder (0700): the database (pg_dump), the master key, the SSH keys, the configuration, and a manifest with checksums; not the repositories")
    .argument('<dir>', 'a new or empty folder, best on another disk or machine')
    .option('--json', 'print the manifest as JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      requireRoot('server-backup');
      const r = await serverBackup(ctx.deps(), dir, cliActor());
      if (o.json) return ctx.printJson(r.manifest);
      const m = r.manifest;
      ctx.print(`server backup written to ${r.dir}: database ${m.database.name} (${m.database.repositories} repositories, ${m.database.clients} clients), master key, SSH keys, configuration`);
      ctx.print('the repositories are not in it: they need their own disk or copies; restore with `borgcube server-restore` (README "When the server is lost")');
    });

  program
    .command('server-restore')
    .description('restore a server backup onto this server (stop BorgCube first): checks every checksum, restores the database of DATABASE_URL and the keys; then run npm start and `borgcube policy sync`')
    .argument('<dir>', 'the folder `borgcube server-backup` wrote')
    .option('--replace', 'move an existing database and differing keys aside (renamed, never deleted)')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { replace?: boolean; json?: boolean }) => {
      requireRoot('server-restore');
      const r = await serverRestore(ctx.deps(), dir, { replace: Boolean(o.replace) });
      if (o.json) return ctx.printJson(r);
      ctx.print(`restored the server backup of ${r.manifest.createdAt}: database ${r.database} (${r.manifest.database.repositories} repositories, ${r.manifest.database.clients} clients), master key, SSH keys`);
      for (const m of r.movedAside) ctx.print(`moved aside: ${m}`);
      for (const m of r.missingRepositories) ctx.io.stderr.write(`warning: repository ${m.name} is not at ${m.path} yet; put it back there before its next job\n`);
      ctx.print('next: start BorgCube (npm start), then `borgcube policy sync` to recreate the schedules');
    });
}
