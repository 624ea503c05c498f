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
      const job = await startRestore(deps, { actor: `cli:${who}`, userId: null, role: 'admin' }, { archive, repository: o.repo, client: o.client, target: o.target, inPlace: Boolean(o.inPlace), paths: o.path, stripComponents });
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
