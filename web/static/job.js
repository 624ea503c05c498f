// The live job page: progress, log tail and state over a WebSocket (/ws/jobs/:id?after=<seq>).
// Log lines are added with textContent, so whatever a client put in a file name stays text.
// A dropped connection reconnects with the last seq seen: the server resends what was missed.
const root = document.getElementById('job');
if (root) {
  const id = root.dataset.jobId;
  let lastSeq = Number(root.dataset.lastSeq || 0);
  let state = root.dataset.state;
  let estimate = Number(root.dataset.estimate) || 0;
  const started = Date.parse(root.dataset.started || '') || Date.now();
  const $ = (x) => document.getElementById(x);
  const log = $('log');
  const bar = $('job-progress');
  const statusLine = $('live-status');
  const maxLines = 5000;
  let prev = null;
  let retry = 500;
  // Queued (waiting for a slot) is not over: the page listens until the job ends.
  const active = (s) => s === 'running' || s === 'queued';
  let done = !active(state);

  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  const bytes = (n) => {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    let v = n;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
  };
  const setText = (el, text) => { if (el) el.textContent = text; };
  const status = (text) => setText(statusLine, text);

  function setState(s, phase, error) {
    if (s === 'running') root.dataset.wasRunning = '1';
    state = s;
    const badge = $('job-state');
    if (badge) {
      const span = document.createElement('span');
      span.className = `badge state-${/^[a-z-]+$/.test(s) ? s : 'other'}`;
      span.dataset.state = s;
      span.textContent = s;
      badge.replaceChildren(span);
    }
    root.dataset.state = s;
    if (phase) setText($('job-phase'), phase);
    const err = $('job-error');
    if (err && error) { err.textContent = error; err.hidden = false; }
    if (s === 'running') $('queue-position')?.remove();
    if (!active(s)) {
      const wasRunning = !done && root.dataset.wasRunning === '1';
      done = true;
      if (bar) bar.value = bar.max;
      // Ended while watched: the page's figures were the last progress event's. A succeeded
      // restore wrote everything it set out to; the end time is now (the next load shows the record).
      if (wasRunning) {
        if (s === 'succeeded' && $('p-total')?.textContent) setText($('p-original'), $('p-total').textContent);
        const finished = $('job-finished');
        if (finished && finished.textContent === '—') finished.textContent = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
      }
      $('cancel-form')?.remove();
      status(`job ${s}`);
    }
  }

  function addLine(m) {
    if (m.seq <= lastSeq) return;
    lastSeq = m.seq;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const li = document.createElement('li');
    li.dataset.seq = String(m.seq);
    li.className = `lvl-${/^[A-Z]+$/.test(m.level) ? m.level.toLowerCase() : 'info'}`;
    const t = document.createElement('time');
    t.textContent = String(m.time).slice(11, 19);
    const lvl = document.createElement('span');
    lvl.className = 'lvl';
    lvl.textContent = m.level;
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = m.message;
    li.append(t, ' ', lvl, ' ', msg);
    log.append(li);
    while (log.childElementCount > maxLines) log.firstElementChild.remove();
    if (nearBottom) log.scrollTop = log.scrollHeight;
  }

  function progress(m) {
    setText($('p-original'), bytes(m.originalSize));
    if (typeof m.totalSize === 'number') setText($('p-total'), bytes(m.totalSize));
    setText($('p-compressed'), bytes(m.compressedSize));
    setText($('p-dedup'), bytes(m.deduplicatedSize));
    // A restore into an empty folder is counted at its end, not listed as it goes.
    setText($('p-files'), typeof m.totalSize === 'number' && !m.nfiles ? '—' : String(m.nfiles));
    setText($('p-path'), m.path || '');
    const now = Date.now();
    if (prev && now > prev.t) {
      const rate = ((m.originalSize - prev.bytes) * 1000) / (now - prev.t);
      const avg = (m.originalSize * 1000) / Math.max(1, now - started);
      setText($('p-rate'), `${bytes(Math.max(0, rate))}/s (average ${bytes(avg)}/s)`);
    }
    prev = { bytes: m.originalSize, t: now };
    if (bar && state === 'running') {
      const max = Number(bar.max) || 1000;
      // A restore reports its total; a backup is measured against the previous one.
      const of = m.totalSize > 0 ? m.totalSize : estimate;
      const v = of > 0 ? Math.min(0.99, m.originalSize / of) : 0.99 * (1 - Math.exp(-m.originalSize / (256 * 1024 * 1024)));
      bar.value = Math.max(Number(bar.value) || 0, Math.round(v * max));
      root.dataset.progressEvents = String(Number(root.dataset.progressEvents || 0) + 1);
    }
  }

  function handle(m) {
    switch (m.type) {
      case 'hello':
        if (typeof m.estimate === 'number') estimate = m.estimate;
        if (m.job.archiveName) setText($('job-archive'), m.job.archiveName);
        setState(m.job.state, m.job.phase, m.job.error);
        break;
      case 'log':
        addLine(m);
        break;
      case 'progress':
        progress(m);
        break;
      case 'state':
        setState(m.state, m.phase, m.error);
        break;
      case 'gap': {
        const li = document.createElement('li');
        li.className = 'lvl-warning';
        li.textContent = `(lines ${m.from}–${m.to} could not be loaded)`;
        log.append(li);
        lastSeq = Math.max(lastSeq, m.to);
        break;
      }
    }
  }

  function connect() {
    if (done) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws/jobs/${encodeURIComponent(id)}?after=${lastSeq}`);
    ws.addEventListener('open', () => { retry = 500; status('live'); });
    ws.addEventListener('message', (ev) => {
      try { handle(JSON.parse(ev.data)); } catch (e) { console.error(e); }
    });
    ws.addEventListener('close', () => {
      if (done) return;
      status('connection lost; reconnecting…');
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  }
  if (log) log.scrollTop = log.scrollHeight;
  connect();
}
