import type { Command } from 'commander';
import { addEmailChannel, addWebhookChannel, listAlertChannels, removeAlertChannel, setAlertChannelEnabled, testAlertChannels } from '../../services/alert-channels.js';
import { listIncidents } from '../../services/incidents.js';
import { runAlertSweepNow } from '../../services/alert-schedule.js';
import { printable, table, type CliContext } from '../context.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerAlertCommands(program: Command, ctx: CliContext) {
  const alert = program
    .command('alert')
    .description('alert channels (webhooks: JSON POST; e-mail: SMTP) for job failures, violations, failed checks and stale clients');

  alertChannelCommands(alert, ctx);
  incidentCommands(alert, ctx);
}

/** Adding, listing, removing, switching and testing alert channels. */
function alertChannelCommands(alert: Command, ctx: CliContext) {
  alert
    .command('add-webhook')
    .description('POST a JSON notice to this URL when an incident opens and when it resolves')
    .argument('<url>', 'http:// or https:// URL (kept sealed: webhook URLs often carry a secret)')
    .option('--json', 'print JSON')
    .action(async (url: string, o: { json?: boolean }) => {
      const c = await addWebhookChannel(ctx.deps(), { url });
      if (o.json) return ctx.printJson(c);
      ctx.print(`webhook channel ${c.id} added (${c.label})`);
    });

  alert
    .command('add-email')
    .description('send a plain-text e-mail when an incident opens and when it resolves')
    .requiredOption('--smtp-url <url>', 'smtp://host:port (STARTTLS when offered) or smtps://user:password@host:465')
    .requiredOption('--from <address>', 'sender address')
    .requiredOption('--to <address>', 'recipient (repeat, or separate with commas)', collect)
    .option('--json', 'print JSON')
    .action(async (o: { smtpUrl: string; from: string; to: string[]; json?: boolean }) => {
      const c = await addEmailChannel(ctx.deps(), { smtpUrl: o.smtpUrl, from: o.from, to: o.to.join(',') });
      if (o.json) return ctx.printJson(c);
      ctx.print(`e-mail channel ${c.id} added (${c.label})`);
    });

  alert
    .command('list')
    .description('list alert channels')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const rows = await listAlertChannels(ctx.deps());
      if (o.json) return ctx.printJson(rows);
      ctx.print(rows.length ? table(['ID', 'KIND', 'TARGET', 'STATE'], rows.map((c) => [c.id, c.kind, c.label, c.enabled ? 'enabled' : 'disabled'])) : 'no alert channels (borgcube alert add-webhook URL | add-email …)');
    });

  alert
    .command('remove')
    .description('remove an alert channel')
    .argument('<id>', 'channel id (see alert list)')
    .action(async (id: string) => {
      await removeAlertChannel(ctx.deps(), id);
      ctx.print(`alert channel ${id} removed`);
    });

  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    alert
      .command(name)
      .description(`${name} an alert channel (a disabled one keeps its settings but gets no notices)`)
      .argument('<id>', 'channel id')
      .action(async (id: string) => {
        await setAlertChannelEnabled(ctx.deps(), id, enabled);
        ctx.print(`alert channel ${id} ${enabled ? 'enabled' : 'disabled'}`);
      });
  }

  alert
    .command('test')
    .description('send a test notice now to one channel or every channel; exit 1 if any failed')
    .argument('[id]', 'channel id (default: all)')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, o: { json?: boolean }) => {
      const results = await testAlertChannels(ctx.deps(), id);
      if (o.json) ctx.printJson(results);
      else if (!results.length) ctx.print('no alert channels');
      else for (const r of results) ctx.print(`${r.channel.id} ${r.channel.label}: ${r.ok ? 'ok' : `FAILED: ${printable(r.error ?? '')}`}`);
      if (results.some((r) => !r.ok)) ctx.exitCode = 1;
    });
}

/** Incidents: listing them and the staleness sweep that opens some. */
function incidentCommands(alert: Command, ctx: CliContext) {
  alert
    .command('incidents')
    .description('open incidents (with --all, resolved ones too), newest first')
    .option('--all', 'include resolved incidents')
    .option('--limit <n>', 'how many', '100')
    .option('--json', 'print JSON')
    .action(async (o: { all?: boolean; limit: string; json?: boolean }) => {
      const rows = await listIncidents(ctx.deps(), { state: o.all ? 'all' : 'open', limit: o.limit });
      if (o.json) return ctx.printJson(rows);
      ctx.print(
        rows.length
          ? table(
              ['OPENED', 'KIND', 'SUBJECT', 'STATE', 'SUMMARY'],
              rows.map((i) => [i.openedAt.toISOString(), i.kind, i.subject, i.resolvedAt ? `resolved ${i.resolvedAt.toISOString()}` : 'firing', i.summary.slice(0, 160)]),
            )
          : o.all
            ? 'no incidents'
            : 'no open incidents',
      );
    });

  alert
    .command('sweep')
    .description('run the staleness sweep now (it also runs on its own Temporal Schedule)')
    .action(async () => {
      const id = await runAlertSweepNow(ctx.deps());
      ctx.print(`sweep started (schedule ${id})`);
    });
}

