// `--console-only --load`: what a running fleet writes to PostgreSQL, without Temporal, so that
// the console is measured against a database that is being written to. Each second the writer
// starts backups (a row `queued`, then `running` with its phase), has each running one append a
// log line every few seconds, and ends those whose time is up (`succeeded`, one in twenty
// `failed`) with their stats and, for a success, an archive row — the statements the job
// activities make, at a rate above what the 10,000-client run reached (20–25 jobs a minute).
// Not the product's code path (no workflows, no advisory locks): only the database load.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Stack } from '../../test/harness/stack-launcher.js';

export interface FleetLoadOptions {
  /** Backups running at once. */
  running: number;
  /** How long each runs, seconds. */
  runS: number;
  /** A log line per running job every this many seconds. */
  logEveryS: number;
}

export const defaultFleetLoad: FleetLoadOptions = { running: 200, runS: 60, logEveryS: 5 };

export async function startFleetLoad(stack: Stack, o: FleetLoadOptions = defaultFleetLoad): Promise<{ describe: string; stop: () => Promise<string> }> {
  const pool = stack.db.handle.pool;
  const clients = (await pool.query<{ id: string; name: string; repository_id: string }>(
    `select c.id, c.name, coalesce(p.repository_id, (select id from repositories order by name limit 1)) as repository_id
     from clients c left join lateral (select repository_id from policies where client_id = c.id limit 1) p on true order by c.name`,
  )).rows;
  const running = new Map<string, { endsAt: number; seq: number; clientIndex: number }>();
  let next = 0;
  let stopped = false;
  const counts = { created: 0, finished: 0, logLines: 0, archives: 0, errors: 0 };
  let lastError = '';

  const tick = async () => {
    const now = Date.now();
    // End the jobs whose time is up.
    for (const [id, j] of running) {
      if (j.endsAt > now) continue;
      running.delete(id);
      const failed = (counts.finished + 1) % 20 === 0;
      counts.finished++;
      if (await endJob(pool, id, clients[j.clientIndex]!.id, failed)) counts.archives++;
    }
    // Start new ones up to the running count: a row queued, then admitted.
    while (running.size < o.running) {
      const i = next++ % clients.length;
      const id = await startJob(pool, clients[i]!, `${clients[i]!.name}-load-${next}`);
      counts.created++;
      // Spread the ends: the first batch ends over one run time, as a steady fleet's would.
      running.set(id, { endsAt: now + (counts.created <= o.running ? Math.random() : 1) * o.runS * 1000, seq: 0, clientIndex: i });
    }
    // Log lines: each running job every logEveryS seconds on average, in one insert.
    const due = [...running.entries()].filter(() => Math.random() < 1 / o.logEveryS);
    if (due.length) {
      await pool.query(
        `insert into job_log_lines (job_id, seq, time, level, type, message)
         select u.id, u.seq, now(), 'INFO', 'borgcube', 'progress: simulated (bench:fleet --load)' from unnest($1::uuid[], $2::int[]) as u(id, seq)`,
        [due.map(([id]) => id), due.map(([, j]) => ++j.seq)],
      );
      counts.logLines += due.length;
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      await tick().catch((err: Error) => {
        counts.errors++;
        lastError = err.message;
      });
      await sleep(Math.max(0, 1000 - (Date.now() - t)));
    }
  })();

  return {
    describe: `${o.running} backups running at once, ${o.runS} s each (~${Math.round((o.running / o.runS) * 60)} jobs created and finished a minute), a log line per running job every ${o.logEveryS} s, an archive row per success`,
    async stop() {
      stopped = true;
      await loop;
      return `${counts.created} jobs created, ${counts.finished} finished, ${counts.archives} archives, ${counts.logLines} log lines${counts.errors ? `; ${counts.errors} ticks failed, e.g. ${lastError}` : ''}`;
    },
  };
}

type Pool = Stack['db']['handle']['pool'];

async function startJob(pool: Pool, c: { id: string; repository_id: string }, archiveName: string): Promise<string> {
  const r = await pool.query<{ id: string }>(
    `insert into jobs (id, kind, client_id, repository_id, archive_name, state, phase, triggered_by)
     values (gen_random_uuid(), 'backup', $1, $2, $3, 'queued', 'reserve', 'bench:fleet --load') returning id`,
    [c.id, c.repository_id, archiveName],
  );
  const id = r.rows[0]!.id;
  await pool.query(`update jobs set state = 'running', started_at = now(), phase = 'run' where id = $1`, [id]);
  return id;
}

/** Ends a job as the completion activity does; a success records its archive row. True when it did. */
async function endJob(pool: Pool, id: string, clientId: string, failed: boolean): Promise<boolean> {
  const r = await pool.query<{ archive_name: string; repository_id: string }>(
    `update jobs set state = $2::job_state, phase = 'done', finished_at = now(), error = $3,
       stats = jsonb_build_object('originalSize', 5000000000, 'compressedSize', 3000000000, 'deduplicatedSize', 20000000, 'nfiles', 30000)
     where id = $1 returning archive_name, repository_id`,
    [id, failed ? 'failed' : 'succeeded', failed ? 'simulated failure (bench:fleet --load)' : null],
  );
  const row = r.rows[0];
  if (failed || !row?.archive_name) return false;
  await pool.query(
    `insert into archives (repository_id, client_id, job_id, name, borg_id, time, original_size, compressed_size, deduplicated_size, nfiles)
     values ($1, $2, $3, $4, md5(random()::text) || md5(random()::text), now(), 5000000000, 3000000000, 20000000, 30000)`,
    [row.repository_id, clientId, id, row.archive_name],
  );
  return true;
}
