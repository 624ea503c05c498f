// Errors the service layer throws on purpose. The CLI prints their message on one line; the web
// app maps them to HTTP statuses in one place (web/errors.ts). Anything else is a bug or an outage.
export type ServiceErrorKind = 'invalid' | 'not-found' | 'conflict' | 'forbidden' | 'unauthorized' | 'unavailable' | 'failed' | 'rate-limited' | 'too-large';

export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly kind: ServiceErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (msg: string) => new ServiceError('invalid', msg);
export const notFound = (what: string, name: string) => new ServiceError('not-found', `${what} ${JSON.stringify(name)} does not exist`);
export const conflict = (msg: string) => new ServiceError('conflict', msg);
export const forbidden = (msg = 'not allowed for your role') => new ServiceError('forbidden', msg);
export const unavailable = (msg: string) => new ServiceError('unavailable', msg);
export const failed = (msg: string) => new ServiceError('failed', msg);
export const unauthorized = (msg = 'log in first') => new ServiceError('unauthorized', msg);
export const rateLimited = (msg: string) => new ServiceError('rate-limited', msg);
export const tooLarge = (msg: string) => new ServiceError('too-large', msg);

/** PostgreSQL unique violation (23505) on the named constraint, if any. */
export function uniqueViolation(err: unknown): string | undefined {
  const e = (err as { cause?: unknown }).cause ?? err;
  const pgErr = e as { code?: string; constraint?: string };
  return pgErr && pgErr.code === '23505' ? (pgErr.constraint ?? 'unique') : undefined;
}
