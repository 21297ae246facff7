/*! upsell in-app widget (docs/in-app.md). One dependency-free script: it asks GET /v1/messages
 * what to show the identified user, draws each message (banner, tooltip, modal) in a shadow root,
 * and answers POST /v1/messages/{id}/events with shown, clicked and dismissed.
 *
 *   <script>window.upsell=window.upsell||function(){(upsell.q=upsell.q||[]).push(arguments)}</script>
 *   <script src="https://HOST/widget.js" data-key="pk_..." async></script>
 *   upsell('identify', {userId, accountId, token}); upsell('check'); upsell('reset');
 *
 * Nothing here may break the host page: every entry point swallows its errors, every promise is
 * caught, and message text is only ever set as textContent. */
(() => {
  'use strict';
  const w = window;
  const d = document;
  const old = w.upsell;
  if (old && old.loaded) return;
  const noop = () => {};
  const safe = (f) =>
    function (...a) {
      try {
        return f.apply(this, a);
      } catch (e) {
        return undefined;
      }
    };

  // -- options: data attributes of this script tag ------------------------------------------------
  const tag = d.currentScript || d.querySelector('script[data-key][src*="widget"]');
  const opt = (tag && tag.dataset) || {};
  const key = opt.key || '';
  const pollOpt = Number(opt.pollSeconds) > 0 ? Math.max(Number(opt.pollSeconds), 1) : 0;
  let base = '';
  try {
    base = opt.api ? new URL(opt.api, location.href).href : new URL(tag.src).origin;
  } catch (e) {
    base = location.origin;
  }
  base = base.replace(/\/+$/, '');
  // A path from the server ("/v1/...") is on the API (after any path prefix of data-api).
  const onApi = (p) => new URL(p.startsWith('/') ? base + p : p, base + '/');

  const TOP = '2147483647';
  const AUTO = { top: 'auto', right: 'auto', bottom: 'auto', left: 'auto' };
  const PLACEMENTS = ['banner', 'tooltip', 'modal'];
  const CLOSE = { de: 'Schlie\u00dfen', fr: 'Fermer', it: 'Chiudi', nb: 'Lukk', nl: 'Sluiten' };
  const CSS = `
*{box-sizing:border-box}
.card{font:400 .95em/1.45 var(--upsell-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);
 color:var(--upsell-fg,#1f2937);background:var(--upsell-bg,#fff);border-radius:var(--upsell-radius,10px);
 box-shadow:0 .5em 2em rgba(0,0,0,.2),0 0 0 1px rgba(0,0,0,.06);padding:1em 3em 1em 1em;position:relative;
 overflow-wrap:anywhere;text-align:start;max-width:100%}
.title{font-weight:650;font-size:1.06em;margin:0 0 .25em}
.body{margin:0 0 .8em;white-space:pre-line}
.cta{display:inline-block;background:var(--upsell-accent,#4338ca);color:var(--upsell-accent-fg,#fff);
 text-decoration:none;padding:.6em 1.1em;border-radius:calc(var(--upsell-radius,10px)*.6);font-weight:600;
 cursor:pointer;max-width:100%}
.cta:hover{filter:brightness(1.1)}
.x{position:absolute;top:.35em;right:.35em;width:2.3em;height:2.3em;border:0;border-radius:50%;padding:0;
 background:transparent;color:inherit;font:inherit;font-size:1.2em;line-height:1;cursor:pointer;opacity:.7}
.x:hover{opacity:1;background:rgba(127,127,127,.15)}
:focus-visible{outline:3px solid var(--upsell-accent,#4338ca);outline-offset:2px}
.banner{display:flex;flex-wrap:wrap;align-items:center;gap:.5em 1.2em;border-radius:0;
 padding:.8em 3.4em .8em 1.2em;max-height:50vh;overflow:auto;
 padding-bottom:calc(.8em + env(safe-area-inset-bottom,0px))}
.banner .text{flex:1 1 18em;min-width:0}.banner .body{margin:0}
.tip{width:100%}
.arrow{position:absolute;width:.8em;height:.8em;background:inherit;transform:rotate(45deg);
 box-shadow:-1px -1px 0 rgba(0,0,0,.06);top:-.4em}
.up .arrow{top:auto;bottom:-.4em;box-shadow:1px 1px 0 rgba(0,0,0,.06)}.corner .arrow{display:none}
.overlay{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;padding:1em;
 background:rgba(17,24,39,.55);overflow:auto}
.modal{width:100%;max-width:30em;max-height:100%;overflow:auto;padding:1.6em 3em 1.6em 1.6em;outline:0}
.modal .title{font-size:1.35em;margin-bottom:.4em}
.modal .body{margin-bottom:1.2em}
@media (prefers-reduced-motion:no-preference){
.card{animation:upsell-in .2s ease-out}.overlay{animation:upsell-fade .2s ease-out}}
@keyframes upsell-in{from{opacity:0;transform:translateY(.5em)}}
@keyframes upsell-fade{from{opacity:0}}`;
  let sheet = null;

  // -- state ------------------------------------------------------------------------------------------
  let user = null; // {userId, accountId, token}
  let serverPoll = 60;
  let fails = 0;
  let timer = 0;
  let busy = false;
  let again = false;
  let due = false;
  let uid = 0;
  const live = new Map(); // message id -> view on the page
  const gone = new Set(); // ids answered on this page: never drawn again, whatever the server says
  const seen = new Set(); // ids reported shown

  // -- the network: failures are silent and back off ----------------------------------------------
  function schedule() {
    clearTimeout(timer);
    if (!user) return;
    const seconds = Math.min((pollOpt || serverPoll) * 2 ** Math.min(fails, 6), 3600);
    timer = setTimeout(
      safe(() => (d.hidden ? (due = true) : check())),
      seconds * (900 + Math.random() * 200),
    );
  }

  function check() {
    if (!user || !key) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    due = false;
    clearTimeout(timer);
    load()
      .then(
        () => (fails = 0),
        () => fails++,
      )
      .catch(noop)
      .finally(
        safe(() => {
          busy = false;
          if (again) {
            again = false;
            check();
          } else schedule();
        }),
      )
      .catch(noop);
  }

  async function load() {
    const who = user;
    const q = new URLSearchParams({ key, userId: who.userId });
    if (who.accountId) q.set('accountId', who.accountId);
    if (who.token) q.set('token', who.token);
    q.set('page', location.pathname);
    const r = await fetch(`${base}/v1/messages?${q}`, { credentials: 'omit', cache: 'no-store' });
    if (who !== user) return;
    if (r.status === 204) return apply([]);
    if (!r.ok) throw new Error(String(r.status));
    const j = await r.json();
    if (!j || !Array.isArray(j.messages)) throw new Error('not an answer');
    if (who !== user) return;
    if (Number(j.poll_seconds) > 0) serverPoll = Math.max(Number(j.poll_seconds), 5);
    apply(j.messages);
  }

  function send(m, event) {
    if (!user) return;
    const url = onApi(m.events);
    url.searchParams.set('key', key);
    const body = { event, userId: user.userId, page: location.pathname };
    if (user.token) body.token = user.token;
    // A string body is text/plain: a simple request, no CORS preflight; keepalive outlives the page.
    const text = JSON.stringify(body);
    try {
      fetch(url.href, { method: 'POST', body: text, keepalive: true, credentials: 'omit' }).catch(
        noop,
      );
    } catch (e) {
      if (navigator.sendBeacon) navigator.sendBeacon(url.href, text);
    }
  }

  // -- messages ----------------------------------------------------------------------------------
  const str = (v) => (typeof v === 'string' ? v : '');

  function link(u) {
    try {
      const x = onApi(str(u) || '#');
      return /^https?:$/.test(x.protocol) && str(u) ? x.href : '';
    } catch (e) {
      return '';
    }
  }

  function valid(m) {
    const id = m && (typeof m.id === 'string' || typeof m.id === 'number') ? String(m.id) : '';
    if (!id || !PLACEMENTS.includes(m.placement)) return null;
    const cta = m.cta && typeof m.cta === 'object' ? m.cta : {};
    const exp = m.expires_at ? Date.parse(m.expires_at) : NaN;
    const locale = str(m.locale).replace(/_/g, '-');
    return {
      id,
      placement: m.placement,
      anchor: str(m.anchor),
      title: str(m.title),
      body: str(m.body),
      label: str(cta.label),
      url: link(cta.url),
      exp: Number.isNaN(exp) ? Infinity : exp,
      lang: /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(locale) ? locale : '',
      events: str(m.events_url) || `/v1/messages/${encodeURIComponent(id)}/events`,
    };
  }

  function apply(list) {
    const now = Date.now();
    const want = new Map(); // placement -> the first message of it the server returned
    for (const raw of list) {
      const m = valid(raw);
      if (m && !gone.has(m.id) && m.exp > now && !want.has(m.placement)) want.set(m.placement, m);
    }
    const ids = new Set([...want.values()].map((m) => m.id));
    // What the server stopped serving goes (answered elsewhere, superseded, expired); except an
    // open modal: it is served once, and stays until the user closes it.
    for (const [id, v] of live) if (!ids.has(id) && v.msg.placement !== 'modal') v.close(false);
    for (const m of want.values()) if (!live.has(m.id)) ready(() => show(m));
  }

  function ready(f) {
    if (d.body) safe(f)();
    else d.addEventListener('DOMContentLoaded', safe(f), { once: true });
  }

  // -- drawing -----------------------------------------------------------------------------------
  function el(name, attrs, ...kids) {
    const e = d.createElement(name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    for (const k of kids) if (k) e.append(k); // strings become text nodes, never HTML
    return e;
  }

  function hostStyle(host, props) {
    for (const k in props) host.style.setProperty(k, props[k], 'important');
  }

  function show(m) {
    if (!user || live.has(m.id) || gone.has(m.id)) return;
    for (const v of live.values()) if (v.msg.placement === m.placement) return;
    const host = d.createElement('upsell-message');
    hostStyle(host, { all: 'initial', display: 'block', 'z-index': TOP, position: 'fixed' });
    host.setAttribute('data-placement', m.placement);
    const root = host.attachShadow({ mode: 'open' });
    try {
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
      }
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.append(el('style', {}, CSS));
    }
    const n = ++uid;
    const titleId = `upsell-t${n}`;
    const bodyId = `upsell-b${n}`;
    const lang = m.lang.split('-')[0];
    const close = el('button', { type: 'button', class: 'x', 'aria-label': CLOSE[lang] || 'Close' });
    close.textContent = '\u00d7';
    const title = m.title && el(m.placement === 'modal' ? 'h2' : 'p', { class: 'title', id: titleId }, m.title);
    const body = m.body && el('p', { class: 'body', id: bodyId }, m.body);
    const cta = m.url && el('a', { class: 'cta', href: m.url }, m.label || m.url);
    const v = { msg: m, host, root, done: false, offs: [] };
    v.on = (target, type, f, o) => {
      const g = safe(f);
      target.addEventListener(type, g, o);
      v.offs.push(() => target.removeEventListener(type, g, o));
    };
    v.close = (dismissed) => {
      if (v.done) return;
      v.done = true;
      live.delete(m.id);
      clearTimeout(v.expiry);
      for (const off of v.offs) safe(off)();
      host.remove();
      if (dismissed) {
        gone.add(m.id);
        send(m, 'dismissed');
      }
      if (v.back && v.back.isConnected && v.back.focus) v.back.focus({ preventScroll: true });
      if (m.placement === 'modal') report();
    };
    v.on(close, 'click', () => v.close(true));
    // A click answers the message: it goes (after the click, so the link still navigates).
    if (cta) {
      v.on(cta, 'click', () => {
        send(m, 'clicked');
        gone.add(m.id);
        setTimeout(safe(() => v.close(false)), 0);
      });
    }
    v.on(root, 'keydown', (e) => {
      if (e.key === 'Escape' && m.placement !== 'modal') v.close(true);
    });
    if (m.exp < Infinity) {
      v.expiry = setTimeout(
        safe(() => v.close(false)),
        Math.min(m.exp - Date.now(), 2 ** 31 - 1),
      );
    }
    live.set(m.id, v);
    const parts = [close, title, body, cta];
    let card;
    if (m.placement === 'banner') {
      hostStyle(host, { left: '0', right: '0', bottom: '0' });
      card = el('div', { class: 'card banner', role: 'region', 'aria-label': m.title || m.body });
      card.append(el('div', { class: 'text' }, title, body), cta || '', close);
    } else if (m.placement === 'modal') {
      hostStyle(host, { inset: '0' });
      card = el('div', { class: 'card modal', role: 'dialog', 'aria-modal': 'true', tabindex: '-1' });
      if (title) card.setAttribute('aria-labelledby', titleId);
      else card.setAttribute('aria-label', m.body);
      if (body) card.setAttribute('aria-describedby', bodyId);
      card.append(...parts.filter(Boolean));
      modal(v, card);
    } else {
      card = el('div', { class: 'card tip', role: 'dialog', 'aria-labelledby': titleId });
      if (!title) card.setAttribute('aria-label', m.body);
      if (body) card.setAttribute('aria-describedby', bodyId);
      card.append(el('span', { class: 'arrow' }), ...parts.filter(Boolean));
      tooltip(v, card);
    }
    if (m.lang) card.setAttribute('lang', m.lang);
    if (m.placement === 'banner') root.append(card);
    d.body.append(host);
    if (m.placement === 'modal') card.focus({ preventScroll: true });
    watch(v, card);
  }

  // `shown` once the message is on screen: at least half of it in the viewport of a visible tab,
  // and not under a modal.
  function report() {
    const blocked = [...live.values()].some((v) => v.msg.placement === 'modal' && !v.done);
    for (const v of live.values()) {
      const m = v.msg;
      if (v.visible && !seen.has(m.id) && (m.placement === 'modal' || !blocked)) {
        seen.add(m.id);
        v.unwatch();
        send(m, 'shown');
      }
    }
  }

  function watch(v, card) {
    v.unwatch = noop;
    if (!w.IntersectionObserver) {
      v.visible = true;
      return report();
    }
    const io = new IntersectionObserver(
      safe((entries) => {
        for (const e of entries) v.visible = e.isIntersecting && e.intersectionRatio >= 0.5;
        report();
      }),
      { threshold: [0, 0.5, 1] },
    );
    io.observe(card);
    v.unwatch = () => io.disconnect();
    v.offs.push(v.unwatch);
  }

  function modal(v, card) {
    const overlay = el('div', { class: 'overlay' }, card);
    v.root.append(overlay);
    const a = d.activeElement;
    v.back = a && a !== d.body ? a : null;
    const focusables = () => [...card.querySelectorAll('a[href],button')];
    // Clicks on the backdrop keep focus in the dialog; only the close button and Esc dismiss.
    v.on(overlay, 'mousedown', (e) => e.target === overlay && e.preventDefault());
    v.on(
      d,
      'keydown',
      (e) => {
        if (e.key === 'Escape') {
          e.stopPropagation();
          e.preventDefault();
          v.close(true);
        } else if (e.key === 'Tab') {
          const f = focusables();
          if (!f.length) return e.preventDefault();
          const i = f.indexOf(v.root.activeElement);
          const inside = v.root.activeElement === card || i >= 0;
          if (!inside || (e.shiftKey ? i === 0 : i === f.length - 1)) {
            e.preventDefault();
            (e.shiftKey ? (i === 0 || !inside ? f[f.length - 1] : f[0]) : f[0]).focus();
          } else if (e.shiftKey && v.root.activeElement === card) {
            e.preventDefault();
            f[f.length - 1].focus();
          }
        }
      },
      true,
    );
    // Focus that escapes (a click on the page, a script) comes back to the dialog.
    v.on(d, 'focusin', (e) => e.target !== v.host && card.focus({ preventScroll: true }), true);
  }

  function tooltip(v, card) {
    const m = v.msg;
    const host = v.host;
    v.root.append(card);
    let frame = 0;
    let last = '';
    const set = (props) => {
      const all = { display: 'block', visibility: 'visible', ...AUTO, ...props };
      const k = JSON.stringify(all);
      if (k !== last) {
        last = k;
        hostStyle(host, all);
      }
    };
    const place = () => {
      frame = 0;
      let a = null;
      let corner = false;
      try {
        a = d.querySelector(m.anchor || '[data-upsell-anchor]');
        corner = !a && !m.anchor; // no anchor named and none marked on the page
      } catch (e) {
        corner = true; // not a selector
      }
      const vw = d.documentElement.clientWidth || w.innerWidth;
      const vh = w.innerHeight;
      const width = Math.min(320, vw - 16);
      card.classList.toggle('corner', corner);
      if (corner) return set({ right: '8px', bottom: '8px', width: `${width}px` });
      const r = a && a.getBoundingClientRect();
      // The named anchor is not on the page (yet), or hidden: wait for it.
      if (!r || (!r.width && !r.height)) return set({ display: 'none' });
      set({ visibility: 'hidden', top: '0px', left: '0px', width: `${width}px` });
      const h = card.offsetHeight;
      const left = Math.max(8, Math.min(r.left + r.width / 2 - width / 2, vw - width - 8));
      const up = r.bottom + 12 + h > vh && r.top - 12 - h >= 0;
      card.classList.toggle('up', up);
      const arrow = card.firstChild;
      arrow.style.left = `${Math.max(12, Math.min(r.left + r.width / 2 - left, width - 12)) - 6}px`;
      set({
        top: `${Math.round(up ? r.top - 12 - h : r.bottom + 12)}px`,
        left: `${Math.round(left)}px`,
        width: `${width}px`,
      });
    };
    const soon = () => {
      if (!frame) frame = requestAnimationFrame(safe(place));
    };
    set({ display: 'none' });
    soon();
    v.on(w, 'resize', soon, { passive: true });
    v.on(w, 'scroll', soon, { passive: true, capture: true });
    if (w.MutationObserver) {
      const mo = new MutationObserver(safe((rs) => rs.some((r) => r.target !== host) && soon()));
      mo.observe(d.documentElement, {
        childList: true,
        subtree: true,
        attributes: true,
        attributeFilter: ['class', 'style', 'hidden', 'open'],
      });
      v.offs.push(() => mo.disconnect());
    }
    v.offs.push(() => cancelAnimationFrame(frame));
  }

  // -- commands ----------------------------------------------------------------------------------
  function clear() {
    for (const v of [...live.values()]) v.close(false);
    gone.clear();
    seen.clear();
  }

  const commands = {
    identify(o) {
      if (!o || o.userId == null || o.userId === '') return;
      const next = {
        userId: String(o.userId),
        accountId: o.accountId == null ? '' : String(o.accountId),
        token: o.token == null ? '' : String(o.token),
      };
      if (!user || user.userId !== next.userId || user.accountId !== next.accountId) clear();
      user = next;
      check();
    },
    check,
    reset() {
      user = null;
      clearTimeout(timer);
      clear();
    },
  };

  const upsell = safe((name, arg) => {
    const f = commands[name];
    if (f) f(arg);
  });
  upsell.loaded = true;
  upsell.q = { push: safe((a) => upsell(...a)) };
  w.upsell = upsell;
  d.addEventListener(
    'visibilitychange',
    safe(() => !d.hidden && due && check()),
  );
  const queued = (old && old.q) || [];
  if (old) old.q = upsell.q;
  for (const a of Array.from(queued)) upsell(...a);
})();
