// The practice calendar: a day or week of one schedule's slots (free, held, booked, pending,
// blocked), an appointment's details with confirm / decline / cancel / move, blocking time
// (`busy-unavailable`) and generating slots from the availability rules (`$generate-slots`,
// previewed first). With authorization on, staff log in first (SMART on FHIR, user/ scopes);
// without it the calendar opens in demo mode.

import { FhirError, SVNR_SYSTEM, get, idOf, parameter, parameterParts, request, resources, update } from './fhir.js';
import { addDays, dayLabel, formatDateTime, formatTime, h, languageSwitch, monday, notice, personName, t, viennaDate, viennaInstant } from './ui.js';
import { login, logout, startSession } from './smart.js';
import './texts.js';

const main = document.querySelector('main');
/** Appointment states that no longer occupy a slot. */
const ENDED = ['cancelled', 'entered-in-error', 'noshow'];
/** How often the calendar reloads while visible, for changes made elsewhere. */
const REFRESH_MS = 30000;

/** What staff ask the identity provider for: their own identity and the practice's data. */
const STAFF_SCOPE = 'openid fhirUser user/*.cruds';

const state = { configuration: undefined, signedIn: false, view: 'day', date: viennaDate(Date.now()), schedules: [], slots: [], selected: null, message: null };

function render() {
  const signOut = state.signedIn && h('button', { type: 'button', class: 'link', onclick: () => { logout(); location.reload(); } }, t('staff.logout'));
  document.querySelector('header nav').replaceChildren(...[signOut, languageSwitch(render)].filter(Boolean));
  document.title = t('staff.title');
  if (state.configuration && !state.signedIn) {
    main.replaceChildren(...[
      h('h2', {}, t('staff.title')),
      state.message,
      h('p', {}, t('staff.login.why')),
      h('button', { type: 'button', onclick: () => login(state.configuration, STAFF_SCOPE) }, t('staff.login')),
    ].filter(Boolean));
    return;
  }
  main.replaceChildren(...[
    h('h2', {}, t('staff.title')),
    state.configuration === null && notice(t('staff.demo')),
    state.message,
    toolbar(),
    legend(),
    calendar(),
    state.selected && detailsPanel(),
    state.moving && moveForm(),
    blockForm(),
    generateForm(),
    patientSearch(),
  ].filter(Boolean));
}

const days = () => (state.view === 'day' ? [state.date] : [...Array(7).keys()].map((i) => addDays(monday(state.date), i)));

function toolbar() {
  const step = state.view === 'day' ? 1 : 7;
  const go = (date) => { state.date = date; load(); };
  return h('div', { class: 'toolbar' },
    h('div', {}, h('label', { for: 'schedule' }, t('staff.schedule')),
      h('select', { id: 'schedule', onchange: (e) => { state.scheduleId = e.target.value; state.selected = null; load(); } },
        state.schedules.map((s) => h('option', { value: s.id, selected: s.id === state.scheduleId }, s.name || s.actor?.[0]?.display || s.id)))),
    h('div', {}, h('label', { for: 'date' }, t('staff.date')),
      h('input', { id: 'date', type: 'date', value: state.date, onchange: (e) => e.target.value && go(e.target.value) })),
    h('div', {}, h('label', { for: 'view' }, t('staff.view')),
      h('select', { id: 'view', onchange: (e) => { state.view = e.target.value; load(); } },
        ['day', 'week'].map((v) => h('option', { value: v, selected: state.view === v }, t(`staff.${v}`))))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => go(addDays(state.date, -step)) }, t('staff.previous')),
      h('button', { type: 'button', class: 'secondary', onclick: () => go(addDays(state.date, step)) }, t('staff.next'))));
}

const KINDS = ['free', 'held', 'booked', 'pending', 'blocked'];

const legend = () => h('ul', { class: 'legend', 'aria-label': t('staff.legend') },
  KINDS.map((kind) => h('li', { class: `slot ${kind}` }, t(`staff.slot.${kind}`))));

/** What a slot shows: its own status, and for a busy one its Appointment's. */
function kind(slot) {
  switch (slot.status) {
    case 'free': return 'free';
    case 'busy-tentative': return 'held';
    case 'busy': return slot.appointment?.status === 'pending' ? 'pending' : 'booked';
    default: return 'blocked';
  }
}

function calendar() {
  const shown = days();
  return h('div', { class: `calendar ${state.view}` }, shown.map((day) => {
    const slots = state.slots.filter((s) => viennaDate(s.start) === day);
    return h('div', { class: 'day', role: 'group', 'aria-label': dayLabel(day) },
      h('h3', {}, dayLabel(day)),
      slots.length ? slots.map((slot) => {
        const k = kind(slot);
        const who = slot.appointment?.subject?.display || slot.appointment?.participant?.[0]?.actor?.display;
        return h('button', { type: 'button', class: `slot ${k}`, 'aria-pressed': String(state.selected?.id === slot.id), onclick: () => select(slot) },
          `${formatTime(slot.start)}–${formatTime(slot.end)} ${t(`staff.slot.${k}`)}`, who && h('br'), who && h('span', {}, who));
      }) : h('p', { class: 'hint' }, t('staff.empty')));
  }));
}

async function select(slot) {
  state.selected = slot;
  state.patient = null;
  render();
  const subject = slot.appointment?.subject?.reference;
  if (subject) {
    state.patient = await get(subject).catch(() => null);
    if (state.selected === slot) render();
  }
  main.querySelector('.panel h3')?.focus();
}

function detailsPanel() {
  const slot = state.selected;
  const a = slot.appointment;
  const k = kind(slot);
  const svnr = state.patient?.identifier?.find((i) => i.system === SVNR_SYSTEM)?.value;
  const act = (label, work, cls = 'secondary') => h('button', { type: 'button', class: cls, onclick: () => change(work) }, label);
  return h('section', { class: 'panel', 'aria-labelledby': 'details-heading' },
    h('h3', { id: 'details-heading', tabindex: '-1' }, `${t('staff.details')}: ${formatDateTime(slot.start)} – ${formatTime(slot.end)}`),
    h('dl', { class: 'summary' },
      h('dt', {}, t('summary.status')), h('dd', {}, t(`staff.slot.${k}`)),
      a && [
        h('dt', {}, t('staff.patient')), h('dd', {}, personName(state.patient) || a.subject?.display || idOf(a.subject) || '–'),
        svnr && [h('dt', {}, t('staff.svnr')), h('dd', {}, svnr)],
        h('dt', {}, t('summary.what')), h('dd', {}, a.description || '–'),
      ]),
    h('div', { class: 'actions' },
      k === 'pending' && act(t('staff.confirm'), () => update({ ...a, status: 'booked' }), ''),
      k === 'pending' && act(t('staff.decline'), () => update({ ...a, status: 'cancelled' })),
      (k === 'booked' || k === 'pending') && h('button', { type: 'button', class: 'secondary', onclick: () => startMove(slot) }, t('staff.move')),
      k === 'booked' && act(t('staff.cancel'), () => update({ ...a, status: 'cancelled' }), 'danger'),
      k === 'free' && act(t('staff.block.one'), () => update({ ...bare(slot), status: 'busy-unavailable' })),
      k === 'blocked' && act(t('staff.unblock'), () => update({ ...bare(slot), status: 'free' })),
      h('button', { type: 'button', class: 'link', onclick: () => { state.selected = null; render(); } }, t('staff.close'))));
}

/** How many free slots the move form offers. */
const MOVE_CHOICES = 100;

/** Moving: the schedule's free slots from the appointment's day (or today) on, to choose one. */
async function startMove(slot) {
  const from = [viennaDate(slot.start), viennaDate(Date.now())].sort()[1];
  const query = new URLSearchParams({ schedule: `Schedule/${state.scheduleId}`, status: 'free', start: `ge${from}`, _sort: 'start', _count: String(MOVE_CHOICES) });
  try {
    const free = resources(await get(`Slot?${query}`)).filter((r) => r.resourceType === 'Slot' && Date.parse(r.start) > Date.now());
    state.moving = { slot, free };
    state.selected = null;
  } catch (error) {
    state.message = failure(error);
  }
  render();
  document.getElementById('move-heading')?.focus();
}

/** The new slot and the reason; the server moves the times with the slot and frees the old one. */
function moveForm() {
  const { slot, free } = state.moving;
  const a = slot.appointment;
  const form = h('form', { class: 'panel', 'aria-labelledby': 'move-heading', onsubmit: (e) => { e.preventDefault(); move(a, new FormData(form)); } },
    h('h3', { id: 'move-heading', tabindex: '-1' }, `${t('staff.move.heading')}: ${a.subject?.display || ''} · ${formatDateTime(slot.start)}`),
    free.length
      ? h('div', { class: 'toolbar' },
        h('div', {}, h('label', { for: 'move-slot' }, t('staff.move.to')),
          h('select', { id: 'move-slot', name: 'slot', required: true },
            free.map((s) => h('option', { value: s.id }, `${formatDateTime(s.start)} – ${formatTime(s.end)}`)))),
        h('div', {}, h('label', { for: 'move-reason' }, t('staff.move.reason')),
          h('input', { id: 'move-reason', name: 'reason', required: true, maxlength: '500' })),
        h('div', { class: 'actions' },
          h('button', { type: 'submit' }, t('staff.move.submit')),
          h('button', { type: 'button', class: 'link', onclick: () => { state.moving = null; render(); } }, t('staff.close'))))
      : h('p', { role: 'status' }, t('staff.move.none')));
  return form;
}

/** The reason is kept as a note on the Appointment (who reads it later sees why it moved). */
function move(appointment, data) {
  const note = { time: new Date().toISOString(), text: `${t('staff.move.note')}: ${String(data.get('reason')).trim()}` };
  state.moving = null;
  change(() => update({ ...appointment, slot: [{ reference: `Slot/${data.get('slot')}` }], note: [...(appointment.note || []), note] }), t('staff.move.done'));
}

/** A slot as stored (without the appointment the page attached). */
const bare = ({ appointment, ...slot }) => slot;

/** One change through the FHIR API; the server's refusal is shown as it says it. */
async function change(work, done = t('staff.done')) {
  try {
    await work();
    state.message = notice(done, 'success');
  } catch (error) {
    state.message = failure(error);
  }
  state.selected = null;
  await load();
}

const failure = (error) => notice(error instanceof FhirError ? error.message : t('error.network'), 'error');

/** Slot generation from the schedule's rules: a dry run shows what would change, then apply. */
function generateForm() {
  const shown = state.generation;
  // What was typed survives a re-render (a reload of the calendar meanwhile).
  const draft = state.generationDraft || {};
  const remember = (e) => { state.generationDraft = { ...state.generationDraft, [e.target.name]: e.target.value }; };
  const form = h('form', { class: 'panel', 'aria-labelledby': 'generate-heading', onsubmit: (e) => { e.preventDefault(); generate(new FormData(form), e.submitter?.value !== 'apply'); } },
    h('h3', { id: 'generate-heading' }, t('staff.generate.heading')),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'generate-start' }, t('staff.generate.start')), h('input', { id: 'generate-start', name: 'start', type: 'date', required: true, oninput: remember, value: draft.start ?? shown?.start ?? state.date })),
      h('div', {}, h('label', { for: 'generate-end' }, t('staff.generate.end')), h('input', { id: 'generate-end', name: 'end', type: 'date', required: true, oninput: remember, value: draft.end ?? shown?.end ?? addDays(state.date, 6) })),
      h('div', {}, h('label', { for: 'generate-minutes' }, t('staff.generate.minutes')), h('input', { id: 'generate-minutes', name: 'minutes', type: 'number', min: '5', max: '480', step: '5', oninput: remember, value: draft.minutes ?? shown?.minutes ?? '' })),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'secondary', value: 'preview' }, t('staff.generate.preview')),
        shown?.dryRun && h('button', { type: 'submit', value: 'apply' }, t('staff.generate.apply')))),
    shown && generationSummary(shown));
  return form;
}

function generationSummary({ dryRun, answer }) {
  const count = (name) => parameter(answer, name) ?? 0;
  return h('div', { role: 'status' },
    h('p', {}, t(dryRun ? 'staff.generate.would' : 'staff.generate.did', count('created'), count('kept'), count('removed'), count('conflicts'))),
    parameterParts(answer, 'conflict').length > 0 && h('ul', {}, parameterParts(answer, 'conflict').map((c) =>
      h('li', {}, `${c.start ? formatDateTime(c.start) : idOf(c.slot)}: ${c.reason || ''}`))));
}

async function generate(data, dryRun) {
  const inputs = { start: String(data.get('start')), end: String(data.get('end')), minutes: String(data.get('minutes') || '') };
  const parameters = [
    { name: 'start', valueDate: inputs.start },
    { name: 'end', valueDate: inputs.end },
    { name: 'dry-run', valueBoolean: dryRun },
    ...(inputs.minutes ? [{ name: 'slot-duration', valueDuration: { value: Number(inputs.minutes), unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } }] : []),
  ];
  try {
    const { body } = await request('POST', `Schedule/${state.scheduleId}/$generate-slots`, { body: { resourceType: 'Parameters', parameter: parameters } });
    state.generation = { ...inputs, dryRun, answer: body };
    state.message = null;
  } catch (error) {
    state.generation = null;
    state.message = failure(error);
  }
  if (dryRun) render();
  else await load();
  document.getElementById('generate-heading')?.scrollIntoView();
}

function blockForm() {
  const form = h('form', { class: 'panel', 'aria-labelledby': 'block-heading', onsubmit: (e) => { e.preventDefault(); block(new FormData(form)); } },
    h('h3', { id: 'block-heading' }, t('staff.block.heading')),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'block-date' }, t('staff.block.date')), h('input', { id: 'block-date', name: 'date', type: 'date', required: true, value: state.date })),
      h('div', {}, h('label', { for: 'block-from' }, t('staff.block.from')), h('input', { id: 'block-from', name: 'from', type: 'time', required: true, value: '13:00' })),
      h('div', {}, h('label', { for: 'block-to' }, t('staff.block.to')), h('input', { id: 'block-to', name: 'to', type: 'time', required: true, value: '18:00' })),
      h('div', {}, h('button', { type: 'submit' }, t('staff.block.submit')))));
  return form;
}

/** Blocks the free slots starting in the period; with none there, one blocking Slot covers it. */
function block(data) {
  const start = viennaInstant(data.get('date'), data.get('from'));
  const end = viennaInstant(data.get('date'), data.get('to'));
  let count = 0;
  change(async () => {
    const query = new URLSearchParams({ schedule: `Schedule/${state.scheduleId}`, status: 'free', _count: '500' });
    query.append('start', `ge${start}`);
    query.append('start', `lt${end}`);
    const free = resources(await get(`Slot?${query}`)).filter((r) => r.resourceType === 'Slot');
    for (const slot of free) await update({ ...slot, status: 'busy-unavailable' });
    count = free.length;
    if (!free.length) {
      await request('POST', 'Slot', { body: { resourceType: 'Slot', schedule: { reference: `Schedule/${state.scheduleId}` }, status: 'busy-unavailable', start, end } });
      count = 1;
    }
  }).then(() => { if (count) state.message = notice(t('staff.block.done', count), 'success'); render(); });
}

/** Patients by SVNR (ten digits) or name, each with their appointments. */
function patientSearch() {
  const form = h('form', { class: 'panel', 'aria-labelledby': 'patients-heading', onsubmit: (e) => { e.preventDefault(); findPatients(new FormData(form).get('who')); } },
    h('h3', { id: 'patients-heading' }, t('staff.patients.heading')),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'who' }, t('staff.patients.who')), h('input', { id: 'who', name: 'who', required: true, value: state.who || '' })),
      h('div', {}, h('button', { type: 'submit', class: 'secondary' }, t('staff.patients.find')))),
    state.patients && (state.patients.length
      ? h('ul', { class: 'cards' }, state.patients.map(({ patient, appointments }) => h('li', {},
        h('h4', {}, personName(patient), ' · ', patient.birthDate || '',
          ' · ', patient.identifier?.find((i) => i.system === SVNR_SYSTEM)?.value || ''),
        appointments.length
          ? h('ul', {}, appointments.map((a) => h('li', {}, `${a.start ? formatDateTime(a.start) : '–'}: ${t(`status.${a.status}`)}`)))
          : h('p', { class: 'hint' }, t('staff.patients.none')))))
      : h('p', { role: 'status' }, t('staff.patients.nobody'))));
  return form;
}

async function findPatients(who) {
  const text = String(who).trim();
  state.who = text;
  const query = new URLSearchParams({ _revinclude: 'Appointment:patient', _count: '20' });
  if (/^[0-9]{10}$/.test(text)) query.set('identifier', `${SVNR_SYSTEM}|${text}`);
  else query.set('name', text);
  try {
    const all = resources(await get(`Patient?${query}`));
    state.patients = all.filter((r) => r.resourceType === 'Patient').map((patient) => ({
      patient,
      appointments: all.filter((r) => r.resourceType === 'Appointment' && r.subject?.reference === `Patient/${patient.id}`)
        .sort((a, b) => (b.start || '').localeCompare(a.start || '')),
    }));
  } catch (error) {
    state.message = failure(error);
  }
  render();
}

/** The shown days' slots of the schedule with the Appointments occupying them. */
async function load() {
  const shown = days();
  const query = new URLSearchParams({ schedule: `Schedule/${state.scheduleId}`, _sort: 'start', _count: '500', _revinclude: 'Appointment:slot' });
  query.append('start', `ge${shown[0]}`);
  query.append('start', `lt${addDays(shown[shown.length - 1], 1)}`);
  try {
    const all = resources(await get(`Slot?${query}`));
    const bySlot = new Map();
    for (const a of all.filter((r) => r.resourceType === 'Appointment' && !ENDED.includes(r.status))) {
      for (const s of a.slot || []) bySlot.set(idOf(s), a);
    }
    state.slots = all.filter((r) => r.resourceType === 'Slot').map((s) => ({ ...s, appointment: bySlot.get(s.id) }));
    if (state.selected) state.selected = state.slots.find((s) => s.id === state.selected.id) || null;
  } catch (error) {
    state.message = failure(error);
  }
  render();
}

async function start() {
  // The server publishes a SMART configuration only when authorization is on.
  try {
    const { configuration, signedIn, loginError } = await startSession();
    Object.assign(state, { configuration, signedIn, message: loginError && notice(`${t('staff.login.failed')} ${loginError}`, 'error') });
  } catch (error) {
    state.message = notice(error instanceof FhirError ? error.message : t('error.network'), 'error');
    render();
    return;
  }
  render();
  if (state.configuration && !state.signedIn) return;
  const params = new URLSearchParams(location.search);
  try {
    state.schedules = resources(await get('Schedule?_count=500&_elements=name,actor'))
      .filter((r) => r.resourceType === 'Schedule')
      .sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
  } catch (error) {
    state.message = failure(error);
  }
  state.scheduleId = params.get('schedule') || state.schedules[0]?.id;
  state.date = params.get('date') || state.date;
  state.view = params.get('view') === 'week' ? 'week' : 'day';
  await load();
  setInterval(() => {
    const busy = state.selected || document.activeElement?.closest('form, .toolbar');
    if (document.visibilityState === 'visible' && !busy) load();
  }, REFRESH_MS);
}

start();
