// How a session refuses: a violation ends the job; a session error is a Borg exception the client
// sees, and the job goes on. replyErrorOf turns either (or anything else) into the reply frame,
// with nothing in it the client may not read.
import type { ReplyError } from '../../protocol/replies.js';
import { enospcPattern } from '../api.js';
import { UpstreamClosedError, UpstreamError } from '../upstream.js';

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

/**
 * What the client is told (DESIGN.md §4.12): a violation by its kind, a SessionError as written
 * for the client, anything else — borg serve's errors, ENOSPC or EIO on the repository, a bug —
 * as a short generic text with `ref`, the correlation id under which the real text is in the
 * job's log. Never a server path, another job's name or an internal message.
 */
export function replyErrorOf(err: unknown, ref: string): ReplyError {
  if (err instanceof PolicyViolation) return { cls: 'ProxyPolicyError', message: `BorgCube refused this (${err.kind}); the details are in the job's log on the server`, fatal: true };
  // Written for the client; capped because the proxy refuses longer messages (replies.ts).
  if (err instanceof SessionError) return { cls: err.cls, message: err.message.slice(0, 4000) };
  if (isStorageFailure(err)) return { cls: 'ProxyError', message: `BorgCube: the repository is unavailable; try again later (ref ${ref})`, fatal: true };
  return { cls: 'ProxyError', message: `BorgCube: internal error (ref ${ref})`, fatal: true };
}

/** True when the client's message is generic and the real text belongs in the job's log. */
export function isInternalError(err: unknown): boolean {
  return !(err instanceof PolicyViolation) && !(err instanceof SessionError);
}

/** borg serve failed or went away, or the file system under the service's files did (errno). */
function isStorageFailure(err: unknown): boolean {
  if (err instanceof UpstreamError || err instanceof UpstreamClosedError) return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/**
 * What filled up, when `err` says the repository's file system is full: borg serve's write failing
 * with ENOSPC (an OSError it passes on as `[Errno 28]`), borg's own pre-commit free-space check,
 * or the service's own write (errno ENOSPC). Undefined for anything else.
 */
export function diskFullDetail(err: unknown): string | undefined {
  if (err instanceof UpstreamError) {
    if (err.cls === 'InsufficientFreeSpaceError') return err.message.replace(/^\w+: /, '').replace(/\.$/, '');
    if (enospcPattern.test(err.message)) return 'No space left on device';
    return undefined;
  }
  if (err instanceof UpstreamClosedError) return /No space left on device/.test(err.message) ? 'No space left on device' : undefined;
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC' ? 'No space left on device' : undefined;
}
