// `borgcube restore`: restores an archive (all of it or some paths) onto a client now; with --wait,
// exits when the job ended (0 only if it succeeded). The CLI runs as root on the server: it has
// the admin's rights, and the audit log names the Unix user who ran it.
import type { Command } from 'commander';
import { startRestore } from '../../services/restores.js';
import { printable, UsageError, type CliContext } from '../context.js';
import { waitForJob } from '../wait.js';

interface RestoreOptions {
  client?: string;
  target?: string;
  inPlace?: boolean;
  path: string[];
  stripComponents?: string;
  repo?: string;
  wait?: boolean;
  json?: boolean;
  dump?: string;
  intoDatabase?: string;
  dbHost?: string;
  dbPort?: string;
  dbUser?: string;
  sudoUser?: string;
  defaultsFile?: string;
}

/** --dump ENTRY --into-database NAME and its connection options → the API's `dump` field. */
function dumpRestore(o: RestoreOptions) {
  if (o.dump === undefined && o.intoDatabase === undefined) return undefined;
  if (o.dump === undefined || o.intoDatabase === undefined) throw new UsageError('--dump and --into-database go together');
  const d = { entry: o.dump, into: o.intoDatabase, host: o.dbHost, port: o.dbPort === undefined ? undefined : Number(o.dbPort), user: o.dbUser, sudoUser: o.sudoUser, defaultsFile: o.defaultsFile };
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as typeof d;
}

export function registerRestoreCommand(program: Command, ctx: CliContext) {
  program
    .command('restore')
    .description('restore an archive onto a client (by default into a new directory /var/tmp/borgcube-restore-<job>); prints the job id')
    .argument('<archive>', 'archive name or id')
    .option('--client <client>', "target client (default: the archive's own)")
    .option('--target <dir>', 'absolute directory on the client to restore into')
    .option('--in-place', 'restore to the original paths (over what is there now)')
    .option('--path <path>', 'an archive path to restore (repeatable; default: everything)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--strip-components <n>', 'drop this many leading path components')
    .option('--repo <repo>', 'the repository, when several hold an archive of that name')
    .option('--dump <entry>', 'stream this database dump entry (e.g. pgsql/app.sql) into --into-database instead of restoring files')
    .option('--into-database <name>', 'the database the restore creates and loads the dump into (SQLite: the new file)')
    .option('--db-host <host>', 'with --dump: database host, address or PostgreSQL socket folder')
    .option('--db-port <port>', 'with --dump: database port')
    .option('--db-user <user>', "with --dump: database user (its password, if any, comes from the client's own configuration)")
    .option('--sudo-user <user>', 'with --dump: run the load tools as this account with sudo -n (e.g. postgres)')
    .option('--defaults-file <path>', 'with --dump: MySQL option file on the client')
    .option('--wait', 'wait for the job to end; exit 0 only if it succeeded')
    .option('--json', 'print JSON')
    .action(async (archive: string, o: RestoreOptions) => {
      let stripComponents: number | undefined;
      if (o.stripComponents !== undefined) {
        stripComponents = Number(o.stripComponents);
        if (!/^\d+$/.test(o.stripComponents) || !Number.isSafeInteger(stripComponents)) throw new UsageError('--strip-components must be a non-negative integer');
      }
      if (o.target !== undefined && o.inPlace) throw new UsageError('give either --target or --in-place, not both');
      const who = process.env.SUDO_USER ?? process.env.USER ?? 'root';
      const deps = ctx.deps();
      const job = await startRestore(deps, { actor: `cli:${who}`, userId: null, role: 'admin' }, { archive, repository: o.repo, client: o.client, target: o.target, inPlace: Boolean(o.inPlace), paths: o.path, stripComponents, dump: dumpRestore(o) });
      const target = job.restore?.target ?? '';
      if (!o.wait) {
        if (o.json) ctx.printJson({ id: job.id, target });
        else ctx.print(`${job.id}\nrestoring into ${printable(target)}`);
        return;
      }
      if (!o.json) ctx.print(`${job.id}\nrestoring into ${printable(target)}`);
      const final = await waitForJob(ctx, job.id);
      if (o.json) ctx.printJson(final);
      else ctx.print(`${final.state}${final.error ? `: ${printable(final.error)}` : ''}`);
      ctx.exitCode = final.state === 'succeeded' ? 0 : 1;
    });
}
