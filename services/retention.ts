// A policy's retention rules: borg prune's --keep-* options, validated, stored without empty
// entries, and shown in a few words.
import { z } from 'zod';
import type { RetentionRules } from '../db/schema.js';

const keepCount = z.coerce.number().int().min(1, 'must be at least 1 (leave the rule out to not use it)').max(100_000);

/** borg prune's rules; an empty object keeps everything (no prune runs). */
export const retentionSchema = z
  .object({
    /** borg's interval: a number and H (hours), d, w, m (31 days) or y, e.g. 48H or 7d. */
    keepWithin: z.string().trim().regex(/^[1-9]\d{0,5}[Hdwmy]$/, 'must be a number followed by H, d, w, m or y, e.g. 7d').optional(),
    hourly: keepCount.optional(),
    daily: keepCount.optional(),
    weekly: keepCount.optional(),
    monthly: keepCount.optional(),
    yearly: keepCount.optional(),
  })
  .strict();

/** Rules without empty entries, so the stored JSON says only what applies. */
export function cleanRetention(r: z.output<typeof retentionSchema>): RetentionRules {
  const out: RetentionRules = {};
  if (r.keepWithin) out.keepWithin = r.keepWithin;
  for (const k of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) if (r[k] !== undefined) out[k] = r[k];
  return out;
}

export function hasRetention(r: RetentionRules): boolean {
  return Boolean(r.keepWithin || r.hourly || r.daily || r.weekly || r.monthly || r.yearly);
}

/** The rules in a few words, for lists: "within 7d, daily 7, weekly 4", or "keep all". */
export function retentionText(r: RetentionRules): string {
  const parts: string[] = [];
  if (r.keepWithin) parts.push(`within ${r.keepWithin}`);
  for (const k of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) if (r[k]) parts.push(`${k} ${r[k]}`);
  return parts.join(', ') || 'keep all';
}
