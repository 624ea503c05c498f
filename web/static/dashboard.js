// Live rows of the dashboard's running jobs: one WebSocket per running job, progress only (the
// log is skipped by asking for lines after the largest seq). When a job ends the page reloads,
// so the fleet table shows the new last backup.
const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const bytes = (n) => {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
};
let reloading = false;
for (const row of document.querySelectorAll('tr[data-job-id]')) {
  const id = row.dataset.jobId;
  const estimate = Number(row.dataset.estimate) || 0;
  const cell = (name) => row.querySelector(`[data-cell="${name}"]`);
  const bar = row.querySelector('progress');
  let retry = 1000;
  const connect = () => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws/jobs/${encodeURIComponent(id)}?after=2147483647`);
    ws.addEventListener('message', (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'progress') {
        cell('read').textContent = bytes(m.originalSize);
        // A restore into an empty folder is counted at its end, not listed as it goes.
        cell('files').textContent = typeof m.totalSize === 'number' && !m.nfiles ? '—' : String(m.nfiles);
        if (bar) {
          // A restore reports its total; a backup is measured against the previous one.
          const of = m.totalSize > 0 ? m.totalSize : estimate;
          const v = of > 0 ? Math.min(0.99, m.originalSize / of) : 0.99 * (1 - Math.exp(-m.originalSize / (256 * 1024 * 1024)));
          bar.value = Math.max(Number(bar.value) || 0, Math.round(v * (Number(bar.max) || 1000)));
        }
        row.dataset.progressEvents = String(Number(row.dataset.progressEvents || 0) + 1);
      } else if (m.type === 'state' || m.type === 'hello') {
        const s = m.type === 'hello' ? m.job : m;
        if (s.phase) cell('phase').textContent = s.phase;
        if (s.state !== 'running' && !reloading) {
          reloading = true;
          setTimeout(() => location.reload(), 1500);
        }
      }
    });
    ws.addEventListener('close', () => {
      if (reloading) return;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  };
  connect();
}
