import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { generatePassword } from '../../infra/passwords.js';
import { addUser, listUsers, roles, updateUser } from '../../services/users.js';
import { table, type CliContext, UsageError } from '../context.js';

export function registerUserCommands(program: Command, ctx: CliContext) {
  const user = program.command('user').description('manage console users');

  user
    .command('add')
    .description('add a console user; asks for a password on a terminal, otherwise generates and prints one')
    .argument('<name>', 'user name')
    .option('--role <role>', `one of ${roles.join(', ')}`, 'viewer')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { role: string; passwordStdin?: boolean; json?: boolean }) => {
      let password: string | undefined;
      if (o.passwordStdin) password = await readLine(process.stdin);
      else if (process.stdin.isTTY) password = await askPassword(ctx);
      const { user: u, generatedPassword } = await addUser(ctx.deps(), { username: name, role: o.role as (typeof roles)[number], password });
      if (o.json) return ctx.printJson({ ...u, password: generatedPassword });
      ctx.print(`user ${u.username} (${u.role}) added${generatedPassword ? `; password: ${generatedPassword}` : ''}`);
    });

  // The way back in for an admin who lost their password, and the way to shut an account from the
  // server itself; like the console, both end the user's sessions and revoke their API tokens.
  user
    .command('set-password')
    .description("give a user a new password (asked on a terminal, --password-stdin, or generated and printed); ends the user's sessions and revokes their API tokens")
    .argument('<name>', 'user name')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action(async (name: string, o: { passwordStdin?: boolean }) => {
      let password: string | undefined;
      if (o.passwordStdin) password = await readLine(process.stdin);
      else if (process.stdin.isTTY) password = await askPassword(ctx);
      const generated = password ? undefined : generatePassword();
      const u = await updateUser(ctx.deps(), name, { password: password ?? generated });
      ctx.print(`user ${u.username} has a new password${generated ? `: ${generated}` : ''}; their sessions ended and their API tokens are revoked`);
    });

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    user
      .command(verb)
      .description(disabled ? "disable a user: they can no longer log in; ends their sessions and revokes their API tokens" : 'enable a disabled user again (revoked sessions and tokens stay revoked)')
      .argument('<name>', 'user name')
      .action(async (name: string) => {
        const u = await updateUser(ctx.deps(), name, { disabled });
        ctx.print(`user ${u.username} ${disabled ? 'disabled; their sessions ended and their API tokens are revoked' : 'enabled'}`);
      });
  }

  user
    .command('list')
    .description('list console users')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const rows = await listUsers(ctx.deps());
      if (o.json) return ctx.printJson(rows);
      ctx.print(table(['USER', 'ROLE', 'DISABLED', 'LAST LOGIN'], rows.map((u) => [u.username, u.role, u.disabled ? 'yes' : 'no', u.lastLoginAt?.toISOString()])));
    });
}

export function readLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: stream });
    let got = false;
    rl.once('line', (l) => {
      got = true;
      rl.close();
      resolve(l);
    });
    rl.once('close', () => (got ? undefined : reject(new UsageError('--password-stdin: no password on stdin'))));
  });
}

/** Asks twice without echo; an empty answer means "generate one". */
async function askPassword(ctx: CliContext): Promise<string | undefined> {
  const first = await askHidden(ctx, 'Password (empty = generate one): ');
  if (!first) return undefined;
  const second = await askHidden(ctx, 'Repeat password: ');
  if (first !== second) throw new UsageError('the passwords do not match');
  return first;
}

function askHidden(ctx: CliContext, prompt: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: ctx.io.stderr, terminal: true });
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    let prompted = false;
    out._writeToOutput = (s: string) => {
      if (!prompted) {
        ctx.io.stderr.write(s);
        prompted = true;
      }
    };
    rl.question(prompt, (answer) => {
      ctx.io.stderr.write('\n');
      rl.close();
      resolve(answer);
    });
  });
}
