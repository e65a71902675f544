// What both pages share: building DOM nodes, the language switch, and times in Europe/Vienna.

import { ZONE } from './fhir.js';

/** `h('button', { onclick, class: 'x' }, 'text', child)`: an element; strings become text, never HTML. */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'value') node.value = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false));
  return node;
}

let language = localStorage.getItem('termin-language') === 'en' ? 'en' : 'de';
let texts = { de: {}, en: {} };

/** The pages' texts, `{ key: { de, en } }`. */
export function defineTexts(table) {
  for (const [key, { de, en }] of Object.entries(table)) {
    texts.de[key] = de;
    texts.en[key] = en;
  }
}

/** The text for `key`, `{0}`, `{1}` replaced by the arguments. */
export function t(key, ...args) {
  const text = texts[language][key] ?? key;
  return text.replace(/\{(\d)\}/g, (_, i) => args[Number(i)]);
}

export const locale = () => (language === 'de' ? 'de-AT' : 'en-GB');

/** The button switching the language; `rerender` draws the page again in the new one. */
export function languageSwitch(rerender) {
  document.documentElement.lang = language;
  return h('button', {
    type: 'button',
    class: 'language',
    lang: language === 'de' ? 'en' : 'de',
    onclick: () => {
      language = language === 'de' ? 'en' : 'de';
      localStorage.setItem('termin-language', language);
      document.documentElement.lang = language;
      rerender();
    },
  }, language === 'de' ? 'English' : 'Deutsch');
}

const format = (options) => (instant) => new Intl.DateTimeFormat(locale(), { timeZone: ZONE, ...options }).format(new Date(instant));
export const formatTime = format({ hour: '2-digit', minute: '2-digit' });
export const formatDay = format({ weekday: 'short', day: 'numeric', month: 'numeric' });
export const formatDate = format({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
export const formatDateTime = (instant) => `${formatDate(instant)}, ${formatTime(instant)}`;

/** The calendar date (`YYYY-MM-DD`) of an instant in Vienna. */
export const viennaDate = (instant) =>
  new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(instant));

/** Calendar arithmetic on `YYYY-MM-DD` (no time of day, so no daylight-saving surprises). */
export function addDays(date, days) {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** The Monday of the week holding `date`. */
export function monday(date) {
  const [y, m, d] = date.split('-').map(Number);
  const weekday = (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
  return addDays(date, -weekday);
}

/** A date heading for a `YYYY-MM-DD` (noon UTC is that same day in Vienna). */
export const dayLabel = (date) => formatDay(`${date}T12:00:00Z`);

/** `14:00` on `date` in Vienna as an instant with the offset Vienna has then. */
export function viennaInstant(date, time) {
  const guess = new Date(`${date}T${time}:00Z`);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: ZONE, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })
      .formatToParts(guess).map((p) => [p.type, p.value]),
  );
  const shown = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
  const offsetMinutes = Math.round((shown - guess.getTime()) / 60000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${date}T${time}:00${offset}`;
}

/** A status line read out by screen readers when it changes. */
export const notice = (text, kind = 'info') => h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);

/** Names of people as written in FHIR. */
export function personName(resource) {
  const name = resource?.name?.[0];
  if (!name) return '';
  return name.text || [...(name.prefix || []), ...(name.given || []), name.family, ...(name.suffix || [])].filter(Boolean).join(' ');
}
