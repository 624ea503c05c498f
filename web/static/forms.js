// Small behaviours of every page, without inline handlers (the CSP forbids them):
// forms with data-confirm ask first; links with data-back go back in history.
document.addEventListener('submit', (ev) => {
  const form = ev.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) ev.preventDefault();
});
document.addEventListener('click', (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest('a[data-back]') : null;
  if (a && window.history.length > 1) {
    ev.preventDefault();
    window.history.back();
  }
});
