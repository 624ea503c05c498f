// Live job events on Redis pub/sub (DESIGN.md §2): the worker publishes progress, log lines and
// state changes; the web app relays them to browsers. Redis keeps nothing: the log lines are in
// PostgreSQL, and a viewer that (re)connects reads the tail from there first.
import { Redis } from 'ioredis';
import { z } from 'zod';

export const jobChannel = (jobId: string) => `borgcube:job:${jobId}`;
/** State changes of every job (dashboard, job lists). */
export const jobsChannel = 'borgcube:jobs';

export const logLineEvent = z.object({
  type: z.literal('log'),
  seq: z.number().int(),
  time: z.string(),
  level: z.string(),
  kind: z.string(),
  msgid: z.string().nullable(),
  message: z.string(),
});
export const progressEvent = z.object({
  type: z.literal('progress'),
  originalSize: z.number(),
  compressedSize: z.number(),
  deduplicatedSize: z.number(),
  nfiles: z.number(),
  path: z.string(),
  time: z.number(),
  /** A restore's bytes to write in all (its originalSize counts those written). */
  totalSize: z.number().optional(),
  /** Monotonic per job, so viewers can detect gaps. */
  n: z.number().int(),
});
export const stateEvent = z.object({
  type: z.literal('state'),
  jobId: z.string(),
  state: z.string(),
  phase: z.string(),
  error: z.string().nullable().optional(),
});
export const jobEvent = z.discriminatedUnion('type', [logLineEvent, progressEvent, stateEvent]);
export type JobEvent = z.infer<typeof jobEvent>;
export type LogLineEvent = z.infer<typeof logLineEvent>;
export type ProgressEvent = z.infer<typeof progressEvent>;

export interface EventPublisher {
  publish(jobId: string, event: JobEvent): Promise<void>;
  close(): Promise<void>;
}

export function createRedis(url: string): Redis {
  // Fail fast on a dead Redis instead of queueing commands forever; live events are best effort.
  return new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
}

export function createEventPublisher(redis: Redis): EventPublisher {
  return {
    async publish(jobId, event) {
      const payload = JSON.stringify(event);
      if (event.type === 'state') await redis.multi().publish(jobChannel(jobId), payload).publish(jobsChannel, payload).exec();
      else await redis.publish(jobChannel(jobId), payload);
    },
    async close() {
      await redis.quit();
    },
  };
}
