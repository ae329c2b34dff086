// The signed-in session: the bearer token and who holds it, in sessionStorage (gone when the tab
// closes). Nothing about patients is stored here.

const KEY = 'yg.session';

export interface Session {
  token: string;
  username: string;
  /** Token expiry, ms since epoch (from the JWT's exp claim). */
  expiresAt: number;
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

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** Forget everything this tab kept: the session and any unsent drafts. */
export function clearAll(): void {
  sessionStorage.clear();
}
