// How a session refuses: a violation ends the job; a session error is a Borg exception the client
// sees, and the job goes on. replyErrorOf turns either (or anything else) into the reply frame.
import type { ReplyError } from '../../protocol/replies.js';
import { UpstreamError } from '../upstream.js';

/** Raised for anything the client was not allowed to do; the service records it and ends the job. */
export class PolicyViolation extends Error {
  override name = 'PolicyViolation';
  constructor(
    readonly kind: string,
    readonly detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

/** A refusal the client sees as a Borg exception, without ending the job. */
export class SessionError extends Error {
  override name = 'SessionError';
  constructor(
    readonly cls: string,
    message: string,
  ) {
    super(message);
  }
}

export function replyErrorOf(err: unknown): ReplyError {
  const e = replyErrorOfUncapped(err);
  // The proxy refuses longer messages (proxy/protocol/replies.ts); borg's own errors can be long.
  return { ...e, message: e.message.slice(0, 4000) };
}

function replyErrorOfUncapped(err: unknown): ReplyError {
  if (err instanceof PolicyViolation) return { cls: 'ProxyPolicyError', message: `BorgCube refused this: ${err.message}`, fatal: true };
  if (err instanceof SessionError) return { cls: err.cls, message: err.message };
  if (err instanceof UpstreamError) return { cls: err.cls, message: err.message, fatal: true };
  return { cls: 'ProxyError', message: `BorgCube repository service: ${(err as Error).message}`, fatal: true };
}
