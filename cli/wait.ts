// `--wait` of the commands that start a job: returns the job's final row as soon as it ended.
import { createRedis } from '../infra/events.js';
import { createJobEventHub } from '../infra/job-event-hub.js';
import type { JobView } from '../services/jobs.js';
import { waitForJobEnd } from '../services/job-wait.js';
import type { CliContext } from './context.js';

export async function waitForJob(ctx: CliContext, id: string): Promise<JobView> {
  const deps = ctx.deps();
  const hub = createJobEventHub(createRedis(deps.config.redisUrl), deps.log);
  ctx.onClose(() => hub.close());
  return waitForJobEnd(deps, hub, id);
}
