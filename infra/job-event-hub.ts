// Live job events from Redis for every live view in this process (the console's WebSockets,
// `job logs --follow`): ONE subscriber connection, one SUBSCRIBE per job however many viewers
// watch it (reference counted), each message parsed once and fanned out.
import type { Redis } from 'ioredis';
import { jobChannel, jobEvent, type JobEvent } from './events.js';
import type { Logger } from './logger.js';

export type JobEventListener = (event: JobEvent) => void;

export interface JobEventHub {
  /** Resolves once Redis confirmed the subscription; the returned function unsubscribes. */
  subscribe(jobId: string, listener: JobEventListener): Promise<() => void>;
  /** Channels with at least one listener (for tests and metrics). */
  channels(): number;
  close(): Promise<void>;
}

/** `subscriber` must be a connection of its own: in subscriber mode it can do nothing else. */
export function createJobEventHub(subscriber: Redis, log: Logger): JobEventHub {
  const listeners = new Map<string, Set<JobEventListener>>();
  // The pending SUBSCRIBE of each channel, so concurrent first viewers wait for the same one.
  const subscribing = new Map<string, Promise<unknown>>();

  subscriber.on('message', (channel: string, message: string) => {
    const set = listeners.get(channel);
    if (!set?.size) return;
    let event: JobEvent;
    try {
      const parsed = jobEvent.safeParse(JSON.parse(message));
      if (!parsed.success) return;
      event = parsed.data;
    } catch {
      return;
    }
    for (const l of [...set]) {
      try {
        l(event);
      } catch (err) {
        log.warn({ err, channel }, 'a job event listener failed');
      }
    }
  });

  return {
    async subscribe(jobId, listener) {
      const channel = jobChannel(jobId);
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
      }
      set.add(listener);
      if (set.size === 1 && !subscribing.has(channel)) {
        const p = subscriber.subscribe(channel).finally(() => subscribing.delete(channel));
        subscribing.set(channel, p);
      }
      try {
        await subscribing.get(channel);
      } catch (err) {
        set.delete(listener);
        throw err;
      }
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const s = listeners.get(channel);
        if (!s) return;
        s.delete(listener);
        if (s.size === 0) {
          listeners.delete(channel);
          subscriber.unsubscribe(channel).catch((err: unknown) => log.warn({ err, channel }, 'unsubscribe failed'));
        }
      };
    },
    channels: () => listeners.size,
    async close() {
      listeners.clear();
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}
