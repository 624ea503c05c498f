// The progress bar of a running job, on the dashboard and the job page.
import { html } from 'hono/html';
import type { RunningJob } from '../../services/dashboard.js';
import type { Html } from './layout.js';

/** A progress element scaled by the previous backup's size (capped until the job ends). */
export function progressBar(j: Pick<RunningJob, 'estimate' | 'progress' | 'state'>, id?: string): Html {
  const done = j.progress?.originalSize ?? 0;
  const max = 1000;
  const value = j.state !== 'running' ? max : j.estimate ? Math.min(990, Math.round((done / j.estimate) * max)) : Math.round(max * (1 - Math.exp(-done / (256 << 20))) * 0.99);
  return html`<progress${id ? html` id="${id}"` : ''} max="${max}" value="${value}">${Math.round(value / 10)}%</progress>`;
}
