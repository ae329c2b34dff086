// Strings by key, Simplified Chinese by default; dates always shown in China Standard Time.
import { en } from './en';
import { zhCN } from './zh-CN';

export type Lang = 'zh-CN' | 'en';
const TABLES: Record<Lang, Record<string, string>> = { 'zh-CN': zhCN, en };
const KEY = 'yg.lang'; // a preference, not patient data
const TZ = 'Asia/Shanghai';

let lang: Lang = (localStorage.getItem(KEY) as Lang) in TABLES
  ? (localStorage.getItem(KEY) as Lang) : 'zh-CN';

export function getLang(): Lang {
  return lang;
}

export function setLang(next: Lang): void {
  lang = next;
  localStorage.setItem(KEY, next);
  document.documentElement.lang = next;
}

export function t(key: string, params: Record<string, string | number> = {}): string {
  const s = TABLES[lang][key] ?? TABLES['zh-CN'][key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? `{${k}}`));
}

/** A date-time from the hub (ISO 8601 UTC) in local (Asia/Shanghai) time. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(lang, {
    timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', hour12: false,
  }).format(d);
}

/** "2h 05m" / "-0h 12m" until `iso`, for the due-time countdown. */
export function countdown(iso: string, now = Date.now()): string {
  const ms = new Date(iso).getTime() - now;
  const sign = ms < 0 ? '-' : '';
  const total = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h >= 24 ? `${sign}${Math.floor(h / 24)}d ${h % 24}h` : `${sign}${h}:${pad(m)}:${pad(s)}`;
}
