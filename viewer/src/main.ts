// Entry point: header, routing between screens (`#/`, `#/item/<id>`, `#/orders/new`), session expiry and the connection banner.
import './styles.css';
import * as api from './api';
import { getLang, setLang, t } from './i18n';
import { initCornerstone } from './screens/image/cornerstone';
import { renderItem } from './screens/item/item';
import { loginForm } from './screens/login/login';
import { renderOrderForm } from './screens/orders/orderForm';
import { renderWorklist } from './screens/worklist/worklist';
import { clearAll } from './session';
import { clear, h } from './ui/dom';

const app = document.getElementById('app')!;
const banner = document.getElementById('banner')!;
let teardown: (() => void) | null = null;
let expiryTimer: number | undefined;

/** Who is signed in: display name (or username), role and institution, as the hub said. */
function userBadge(): HTMLElement | null {
  const s = api.currentSession();
  if (!s) return null;
  const me = s.me;
  return h('span', { class: 'user', 'data-testid': 'user', 'data-role': me?.role ?? '',
                     title: me ? `${me.username} · ${me.institution_name ?? me.institution_code}` : '' },
    h('span', { 'data-testid': 'user-name' }, me?.display_name || s.username),
    me ? h('span', { class: 'role', 'data-testid': 'user-role' }, t(`role.${me.role}`)) : null);
}

function header(): HTMLElement {
  const s = api.currentSession();
  return h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '#/' }, t('app.title')),
    h('span', { class: 'spacer' }),
    h('span', { class: 'session-expiry', id: 'session-expiry' }),
    userBadge(),
    h('button', {
      class: 'link', 'data-testid': 'lang',
      onclick: () => { setLang(getLang() === 'zh-CN' ? 'en' : 'zh-CN'); route(); },
    }, t('lang.switch')),
    s ? h('button', {
      class: 'link', 'data-testid': 'logout',
      onclick: () => { api.logout(); clearAll(); location.hash = '#/'; route(); },
    }, t('logout')) : null,
  );
}

function showBanner(text: string | null, kind = 'offline'): void {
  banner.hidden = !text;
  banner.className = `banner banner-${kind}`;
  banner.textContent = text ?? '';
}

/** The session ended (expiry or a 401): sign in again over the current screen, keeping it. */
function sessionExpired(): void {
  if (document.getElementById('relogin')) return;
  const overlay = h('div', { class: 'overlay', id: 'relogin', 'data-testid': 'session-expired' },
    h('div', { class: 'dialog' },
      h('p', { class: 'warn' }, t('session.expired')),
      loginForm(() => {
        overlay.remove();
        watchExpiry();
        // Signed in again, possibly as someone else: the header says who (the screen stays).
        document.querySelector('header.topbar')?.replaceWith(header());
      })));
  document.body.appendChild(overlay);
}

function watchExpiry(): void {
  window.clearInterval(expiryTimer);
  expiryTimer = window.setInterval(() => {
    const s = api.currentSession();
    const el = document.getElementById('session-expiry');
    if (!s) return;
    const left = s.expiresAt - Date.now();
    if (left <= 0) {
      api.expireSession();
      return;
    }
    if (el) el.textContent = left < 10 * 60_000 ? t('session.expiring', { min: Math.ceil(left / 60_000) }) : '';
  }, 1000);
}

export function route(): void {
  teardown?.();
  teardown = null;
  document.documentElement.lang = getLang();
  document.title = t('app.title');
  if (!api.currentSession()) {
    clear(app, header(), h('main', { class: 'login-page' },
      h('h1', {}, t('app.title')), loginForm(() => route())));
    return;
  }
  if (!api.currentSession()!.me) {
    // Who the user is decides what is offered: ask the hub before showing any screen. A 401
    // ends the session (the sign-in overlay); offline, the banner shows and we ask again later.
    const waiting = h('main', { class: 'screen muted', 'data-testid': 'loading-me' }, t('loading'));
    clear(app, header(), waiting);
    api.refreshMe().then(() => route(), (e) => {
      if (!(e instanceof api.ApiError) || e.status === 401) return;
      clear(waiting, h('p', { class: 'error' }, t('error', { detail: e.detail })),
        h('button', { onclick: () => route() }, t('retry')));
    });
    return;
  }
  watchExpiry();
  // Start the image codecs and workers while the reader looks at the worklist, not on the click.
  window.setTimeout(() => void initCornerstone(), 0);
  const main = h('main', { class: 'screen' });
  clear(app, header(), main);
  const m = location.hash.match(/^#\/item\/(\d+)$/);
  if (m) teardown = renderItem(main, Number(m[1]));
  else if (location.hash === '#/orders/new') {
    if (api.can('order.write')) teardown = renderOrderForm(main);
    else clear(main, h('p', { class: 'muted', 'data-testid': 'not-permitted' },
      t('not_permitted'), ' ', h('a', { href: '#/' }, t('back'))));
  }
  else teardown = renderWorklist(main);
}

api.subscribeUnauthorized(() => sessionExpired());
api.subscribeConnection((online) => {
  showBanner(online ? null : t('offline'));
  // Back online before the hub said who the user is: ask again (route() does).
  if (online && api.currentSession() && !api.currentSession()!.me) route();
});
window.addEventListener('hashchange', route);
route();
