// The signed-in session: the bearer token and who holds it (name, role, what the role allows), in
// sessionStorage (gone when the tab closes). Nothing about patients is stored here.
import type { Capability, Me } from './api/types';

const KEY = 'yg.session';

export interface Session {
  token: string;
  username: string;
  /** Token expiry, ms since epoch (from the JWT's exp claim). */
  expiresAt: number;
  /** The hub's `GET /api/auth/me`, read right after sign-in; absent until then. */
  me?: Me;
}

function expiryOf(token: string): number {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return Number(payload.exp) * 1000;
  } catch {
    return 0;
  }
}

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as Session;
    return s.expiresAt > Date.now() ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(username: string, token: string): Session {
  const s: Session = { token, username, expiresAt: expiryOf(token) };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/** Keep who the hub says the session's user is (same tab, same token). */
export function saveMe(s: Session, me: Me): Session {
  const next: Session = { ...s, me };
  sessionStorage.setItem(KEY, JSON.stringify(next));
  return next;
}

/** Whether the session's role may do `cap`; false until the hub has said who the user is. */
export function sessionCan(s: Session | null, cap: Capability): boolean {
  return s?.me?.capabilities.includes(cap) ?? false;
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** Forget everything this tab kept: the session and any unsent drafts. */
export function clearAll(): void {
  sessionStorage.clear();
}
