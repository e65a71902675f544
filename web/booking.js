// The patients' booking page: service and place → providers → a week of free slots → $hold →
// patient details → $book → confirmation; and cancelling a booked appointment. Every rule
// (what is free, who may hold or book, the cancellation policy) is the server's: the page shows
// what the FHIR API answers.

import { FhirError, SVNR_SYSTEM, extensionParts, get, hold, idOf, parameter, parameterParts, request, resources, update } from './fhir.js';
import { addDays, dayLabel, formatDateTime, formatTime, h, languageSwitch, monday, notice, personName, t, viennaDate } from './ui.js';
import './texts.js';

const main = document.querySelector('main');
const SERVICE_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type';

/** Holds are this tab's: it presents its own tokens, so another tab never owns them. */
const tabToken = crypto.randomUUID();

const state = { step: 'search', message: null, form: {} };

function show(changes) {
  Object.assign(state, changes);
  render();
}

function render() {
  document.querySelector('header nav').replaceChildren(languageSwitch(render));
  document.title = t('booking.title');
  const views = { search, providers, week, details, moveConfirm, done, manage };
  const view = views[state.step]();
  main.replaceChildren(...[state.message, view].flat().filter(Boolean));
  main.querySelector('h2')?.focus();
}

const heading = (text) => h('h2', { tabindex: '-1' }, text);
const failure = (error) => notice(error instanceof FhirError ? error.message : t('error.network'), 'error');

/** Runs a step's requests, showing a refusal instead of the step when the server says no. */
async function attempt(work) {
  try {
    await work();
  } catch (error) {
    console.error(error);
    show({ message: failure(error) });
  }
}

// --- 1. Service and place ------------------------------------------------------------------

/** The services offered, one entry per name, with the type code $findHSP searches by. */
async function loadServices() {
  const bundle = await get('HealthcareService?_count=500&_elements=name,type');
  const byName = new Map();
  for (const service of resources(bundle)) {
    const coding = service.type?.[0]?.coding?.[0];
    const name = service.type?.[0]?.text || service.name;
    if (coding && name && !byName.has(name)) byName.set(name, { name, system: coding.system || SERVICE_TYPE, code: coding.code });
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function search() {
  const services = state.services || [];
  const form = h('form', { onsubmit: (event) => { event.preventDefault(); findProviders(new FormData(form)); } },
    h('label', { for: 'service' }, t('search.service')),
    h('select', { id: 'service', name: 'service', required: true },
      services.map((s, i) => h('option', { value: i, selected: s.name === state.choice?.service.name }, s.name))),
    h('label', { for: 'zip' }, t('search.zip')),
    h('input', { id: 'zip', name: 'zip', inputmode: 'numeric', pattern: '[0-9]{1,4}', autocomplete: 'postal-code',
      'aria-describedby': 'zip-hint', value: state.choice?.zip || '' }),
    h('p', { id: 'zip-hint', class: 'hint' }, t('search.zip.hint')),
    h('fieldset', {},
      h('legend', {}, t('search.when')),
      WEEKDAYS.map((day) => h('label', { class: 'inline' },
        h('input', { type: 'checkbox', name: 'day', value: day, checked: state.choice?.days?.includes(day) }), ` ${t(`day.${day}`)}`)),
      h('label', { for: 'daytime' }, t('search.daytime')),
      h('select', { id: 'daytime', name: 'daytime' },
        Object.keys(DAYTIMES).map((key) => h('option', { value: key, selected: state.choice?.daytime === key }, t(`daytime.${key}`))))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, t('search.submit')),
      'geolocation' in navigator && h('button', { type: 'button', class: 'secondary', onclick: () => nearMe(new FormData(form)) }, t('search.near'))));
  return h('section', {}, heading(t('search.heading')), form,
    h('p', {}, h('a', { href: '/?manage' }, t('search.manage'))));
}

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
/** Times of day a patient may prefer, as R5 Availability start and end times. */
const DAYTIMES = { any: null, morning: ['07:00:00', '12:00:00'], afternoon: ['12:00:00', '20:00:00'] };

/** The preferred weekdays and time of day as `healthcareService-availability`, or none. */
function wantedAvailability(days, daytime) {
  const hours = DAYTIMES[daytime];
  if (!days.length && !hours) return null;
  return {
    availableTime: [{
      ...(days.length ? { daysOfWeek: days } : {}),
      ...(hours ? { availableStartTime: hours[0], availableEndTime: hours[1] } : { allDay: true }),
    }],
  };
}

function nearMe(data) {
  navigator.geolocation.getCurrentPosition(
    (position) => findProviders(data, `${position.coords.latitude}|${position.coords.longitude}|20|km`),
    () => show({ message: notice(t('search.near.failed'), 'error') }),
  );
}

/** The match entries' extension naming each provider's earliest free slot for that service. */
const EARLIEST_FREE_SLOT = 'https://termin.at/fhir/StructureDefinition/earliest-free-slot';

/** `$findHSP`; each provider (PractitionerRole) with its earliest free slot, as the server names it. */
function findProviders(data, near) {
  const service = state.services[Number(data.get('service'))];
  const zip = String(data.get('zip') || '').trim();
  const days = data.getAll('day');
  const daytime = String(data.get('daytime') || 'any');
  attempt(async () => {
    const inputs = [['healthcareService-type', `${service.system}|${service.code}`], ['_count', '50']];
    if (zip) inputs.push(['healthcareService-zipCodeArea', zip]);
    if (near) inputs.push(['near', near]);
    // Preferred times travel as an R5 Availability, which only a POST can carry.
    const availability = wantedAvailability(days, daytime);
    const bundle = availability
      ? (await request('POST', 'HealthcareService/$findHSP', { body: { resourceType: 'Parameters', parameter: [
        ...inputs.map(([name, value]) => ({ name, valueString: value })),
        { name: 'healthcareService-availability', valueAvailability: availability },
      ] } })).body
      : await get(`HealthcareService/$findHSP?${new URLSearchParams(inputs)}`);
    const all = resources(bundle);
    const byReference = new Map(all.map((r) => [`${r.resourceType}/${r.id}`, r]));
    const matches = bundle.entry.filter((e) => e.search?.mode === 'match' && (e.resource.type?.[0]?.text || e.resource.name) === service.name);
    const services = new Set(matches.map((e) => `HealthcareService/${e.resource.id}`));
    // A role offering several of the matched services: its earliest slot over all of them.
    const earliest = new Map();
    for (const { provider, start } of matches.flatMap((e) => extensionParts(e, EARLIEST_FREE_SLOT))) {
      const key = provider?.reference;
      if (key && start && !(Date.parse(earliest.get(key)) <= Date.parse(start))) earliest.set(key, start);
    }
    const providers = all
      .filter((r) => r.resourceType === 'PractitionerRole' && (r.healthcareService || []).some((s) => services.has(s.reference)))
      .map((role) => ({
        role,
        name: personName(byReference.get(role.practitioner?.reference)) || role.practitioner?.display || '',
        organization: byReference.get(role.organization?.reference)?.name || role.organization?.display || '',
        service: role.healthcareService.find((s) => services.has(s.reference)),
        earliest: earliest.get(`PractitionerRole/${role.id}`),
      }))
      .sort((a, b) => (a.earliest || '9').localeCompare(b.earliest || '9') || a.name.localeCompare(b.name));
    const warnings = all.filter((r) => r.resourceType === 'OperationOutcome').flatMap((o) => o.issue || [])
      .filter((i) => i.severity === 'warning').map((i) => i.diagnostics);
    show({ step: 'providers', choice: { service, zip, days, daytime }, providers,
      message: warnings.length ? notice(warnings.join(' '), 'warning') : null });
  });
}

// --- 2. Providers ---------------------------------------------------------------------------

function providers() {
  const list = state.providers.length
    ? h('ul', { class: 'cards' }, state.providers.map((p) => h('li', {},
      h('h3', {}, p.name),
      h('p', {}, p.organization, ' · ', p.service?.display || state.choice.service.name),
      h('p', {}, p.earliest ? t('providers.earliest', formatDateTime(p.earliest)) : t('providers.none')),
      h('button', { type: 'button', onclick: () => openWeek(p), 'aria-label': t('providers.choose.for', p.name) }, t('providers.choose')))))
    : notice(t('providers.empty'));
  return h('section', {}, heading(t('providers.heading', state.choice.service.name)), back('search'), list);
}

const back = (step) => h('button', { type: 'button', class: 'link', onclick: () => show({ step, message: null }) }, t('back'));

// --- 3. A week of free slots ----------------------------------------------------------------

function openWeek(provider) {
  attempt(async () => {
    const schedules = resources(await get(`Schedule?actor=PractitionerRole/${provider.role.id}`)).filter((r) => r.resourceType === 'Schedule');
    if (!schedules.length) throw new FhirError(404, null);
    const start = monday(viennaDate(provider.earliest || Date.now()));
    await loadWeek({ provider, schedule: schedules[0], weekStart: start });
  });
}

async function loadWeek({ provider, schedule, weekStart }, message = null) {
  const today = viennaDate(Date.now());
  const from = weekStart < today ? today : weekStart;
  const query = `Slot?schedule=Schedule/${schedule.id}&status=free&start=ge${from}&start=lt${addDays(weekStart, 7)}&_sort=start&_count=500`;
  const slots = resources(await get(query)).filter((r) => r.resourceType === 'Slot' && Date.parse(r.start) > Date.now());
  show({ step: 'week', provider, schedule, weekStart, slots, message });
}

function week() {
  const { provider, weekStart, slots } = state;
  const days = [...Array(7).keys()].map((i) => addDays(weekStart, i));
  const turn = (days) => attempt(() => loadWeek({ ...state, weekStart: addDays(weekStart, days) }));
  return h('section', {},
    heading(t(state.moving ? 'move.heading' : 'week.heading', provider.name)),
    back(state.moving ? 'manage' : 'providers'),
    h('div', { class: 'week-nav' },
      h('button', { type: 'button', class: 'secondary', onclick: () => turn(-7), disabled: weekStart <= monday(viennaDate(Date.now())) }, t('week.previous')),
      h('p', { 'aria-live': 'polite' }, t('week.of', dayLabel(weekStart), dayLabel(days[6]))),
      h('button', { type: 'button', class: 'secondary', onclick: () => turn(7) }, t('week.next'))),
    h('div', { class: 'week' }, days.map((day) => {
      const daySlots = slots.filter((s) => viennaDate(s.start) === day);
      return h('div', { class: 'day', role: 'group', 'aria-label': dayLabel(day) },
        h('h3', {}, dayLabel(day)),
        daySlots.length
          ? daySlots.map((slot) => h('button', { type: 'button', class: 'slot', onclick: () => holdSlot(slot),
            'aria-label': t('week.slot', formatDateTime(slot.start)) }, formatTime(slot.start)))
          : h('p', { class: 'hint' }, t('week.none')));
    })));
}

// --- 4. Hold and patient details ------------------------------------------------------------

/** Holds `slot` for this tab (releasing a hold it had), then asks for the patient's details. */
function holdSlot(slot) {
  attempt(async () => {
    await releaseHold();
    try {
      const { body } = await hold(slot.id, 'busy-tentative', [tabToken]);
      show({ step: state.moving ? 'moveConfirm' : 'details', message: null, alternatives: null,
        held: { slot, token: parameter(body, 'hold-token'), until: parameter(body, 'held-until') } });
    } catch (error) {
      if (!(error instanceof FhirError) || error.status !== 409) throw error;
      await loadWeek(state, notice(t('hold.taken', error.message), 'error'));
    }
  });
}

async function releaseHold() {
  const held = state.held;
  state.held = null;
  if (held && Date.parse(held.until) > Date.now()) await hold(held.slot.id, 'free', [held.token]).catch(() => {});
}

let countdown;

function details() {
  const { held, form: values } = state;
  const field = (name, type, autocomplete, extra = {}) => [
    h('label', { for: name }, t(`details.${name}`)),
    h('input', { id: name, name, type, autocomplete, value: values[name] || '', ...extra }),
  ];
  const svnrHint = h('p', { id: 'svnr-hint', class: 'hint' }, t('details.svnr.hint'));
  const form = h('form', { novalidate: true, onsubmit: (event) => { event.preventDefault(); submitBooking(form); } },
    field('given', 'text', 'given-name', { required: true }),
    field('family', 'text', 'family-name', { required: true }),
    field('birthDate', 'date', 'bday', { required: true }),
    h('label', { for: 'gender' }, t('details.gender')),
    h('select', { id: 'gender', name: 'gender', required: true },
      ['', 'female', 'male', 'other', 'unknown'].map((g) => h('option', { value: g, selected: values.gender === g }, t(`gender.${g || 'choose'}`)))),
    field('svnr', 'text', 'off', { required: true, inputmode: 'numeric', maxlength: '10', 'aria-describedby': 'svnr-hint' }),
    svnrHint,
    field('email', 'email', 'email'),
    field('phone', 'tel', 'tel'),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, t('details.submit')),
      h('button', { type: 'button', class: 'secondary', onclick: () => attempt(async () => { await releaseHold(); await loadWeek(state); }) }, t('details.other'))));
  return h('section', {},
    heading(t('details.heading')),
    h('p', { class: 'chosen' }, t('details.slot', formatDateTime(held.slot.start), state.provider.name)),
    countdownTimer(held),
    state.alternatives && alternatives(),
    form);
}

/** The time left on the hold, counting down to `held-until`. */
function countdownTimer(held) {
  const timer = h('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
  clearInterval(countdown);
  const tick = () => {
    const left = Math.max(0, Math.round((Date.parse(held.until) - Date.now()) / 1000));
    timer.textContent = left > 0
      ? t('hold.left', `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`)
      : t('hold.expired');
    timer.classList.toggle('expired', left === 0);
    if (left === 0) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 1000);
  return timer;
}

/** The free slots the server proposed when the chosen one was taken. */
function alternatives() {
  return h('div', { class: 'alternatives' },
    h('h3', {}, t('alternatives.heading')),
    state.alternatives.length
      ? h('ul', {}, state.alternatives.map((a) => h('li', {},
        h('button', { type: 'button', class: 'slot', onclick: () => holdSlot({ ...state.held.slot, id: a.id, start: a.start }) }, formatDateTime(a.start)))))
      : h('p', {}, t('alternatives.none')));
}

/** The Austrian social security number's check digit (its fourth digit): weights 3 7 9 _ 5 8 4 2 1 6, modulo 11. */
function validSvnr(svnr) {
  if (!/^[1-9][0-9]{9}$/.test(svnr)) return false;
  const weights = [3, 7, 9, 0, 5, 8, 4, 2, 1, 6];
  const sum = [...svnr].reduce((total, digit, i) => total + Number(digit) * weights[i], 0);
  return sum % 11 !== 10 && sum % 11 === Number(svnr[3]);
}

function submitBooking(form) {
  // A click while another slot is being held (the old view still shows) waits for that view.
  if (!state.held) return;
  const data = Object.fromEntries(new FormData(form));
  state.form = data;
  const svnr = form.elements.svnr;
  svnr.setCustomValidity(validSvnr(data.svnr.trim()) ? '' : t('details.svnr.invalid'));
  if (!form.checkValidity()) {
    const invalid = form.querySelector(':invalid');
    show({ message: notice(invalid === svnr ? t('details.svnr.invalid') : t('details.incomplete'), 'error') });
    document.getElementById(invalid.id)?.focus();
    return;
  }
  attempt(async () => {
    const patient = await findOrCreatePatient(data);
    const { slot, token } = state.held;
    const appointment = {
      resourceType: 'Appointment',
      identifier: [{ system: 'urn:ietf:rfc:3986', value: `urn:uuid:${crypto.randomUUID()}` }],
      status: 'proposed',
      serviceType: slot.serviceType,
      description: state.choice.service.name,
      slot: [{ reference: `Slot/${slot.id}` }],
      subject: { reference: `Patient/${patient.id}`, display: personName(patient) },
      participant: [
        { actor: { reference: `Patient/${patient.id}`, display: personName(patient) }, required: true, status: 'accepted' },
        { actor: { reference: `PractitionerRole/${state.provider.role.id}`, display: state.provider.name }, required: true, status: 'accepted' },
      ],
    };
    try {
      const { body } = await request('POST', 'Appointment/$book', {
        headers: { 'X-Hold-Token': [tabToken, token].join(',') },
        body: { resourceType: 'Parameters', parameter: [{ name: 'appointment-resource', resource: appointment }] },
      });
      clearInterval(countdown);
      state.held = null;
      show({ step: 'done', appointment: parameter(body, 'appointment'), message: null, form: {} });
    } catch (error) {
      if (!(error instanceof FhirError) || error.status !== 409) throw error;
      show({ message: notice(t('book.taken', error.message), 'error'), alternatives: proposedAlternatives(error.body) });
    }
  });
}

/** The free slots a refused `$book` proposes instead (its `alternative` parameters). */
const proposedAlternatives = (answer) => parameterParts(answer, 'alternative')
  .filter((a) => a.slot?.reference && a.start)
  .map((a) => ({ id: idOf(a.slot), start: a.start }));

/** The Patient with this SVNR (a conditional create makes it once). */
async function findOrCreatePatient(data) {
  const telecom = [
    data.email && { system: 'email', value: data.email },
    data.phone && { system: 'phone', value: data.phone },
  ].filter(Boolean);
  const patient = {
    resourceType: 'Patient',
    meta: { profile: ['http://hl7.at/fhir/HL7ATCoreProfiles/5.0.0/StructureDefinition/at-core-patient'] },
    identifier: [{
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] },
      system: SVNR_SYSTEM, value: data.svnr.trim(),
    }],
    name: [{ family: data.family.trim(), given: [data.given.trim()] }],
    gender: data.gender,
    birthDate: data.birthDate,
    ...(telecom.length ? { telecom } : {}),
  };
  const { body } = await request('POST', 'Patient', {
    body: patient,
    headers: { 'If-None-Exist': `identifier=${SVNR_SYSTEM}|${patient.identifier[0].value}`, Prefer: 'return=representation' },
  });
  return body;
}

// --- 5. Confirmation, .ics, cancellation --------------------------------------------------------

function done() {
  const a = state.appointment;
  const link = `${location.origin}/?appointment=${encodeURIComponent(a.id)}`;
  return h('section', {},
    heading(a.status === 'pending' ? t('done.pending') : t('done.booked')),
    appointmentSummary(a),
    h('div', { class: 'actions' },
      h('a', { class: 'button', href: icsLink(a), download: 'termin.ics' }, t('done.ics')),
      h('a', { class: 'button secondary', href: link }, t('done.manage'))),
    h('p', { class: 'hint' }, t('done.keep', link)));
}

function appointmentSummary(a) {
  const provider = a.participant?.find((p) => p.actor?.reference?.startsWith('PractitionerRole/'))?.actor?.display;
  return h('dl', { class: 'summary' },
    h('dt', {}, t('summary.when')), h('dd', {}, a.start ? `${formatDateTime(a.start)} – ${formatTime(a.end)}` : '–'),
    h('dt', {}, t('summary.what')), h('dd', {}, a.description || a.serviceType?.[0]?.concept?.coding?.[0]?.display || '–'),
    provider && [h('dt', {}, t('summary.who')), h('dd', {}, provider)],
    h('dt', {}, t('summary.patient')), h('dd', {}, a.subject?.display || '–'),
    h('dt', {}, t('summary.status')), h('dd', { class: `status-${a.status}` }, t(`status.${a.status}`)));
}

/** An iCalendar file of the appointment (times in UTC), as a data: link. */
function icsLink(a) {
  const stamp = (instant) => new Date(instant).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const escape = (text) => String(text).replace(/[\\;,]/g, (c) => `\\${c}`).replace(/\n/g, '\\n');
  const lines = [
    'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//Termin//Online-Terminbuchung//DE', 'BEGIN:VEVENT',
    `UID:${a.id}@${location.host}`, `DTSTAMP:${stamp(Date.now())}`, `DTSTART:${stamp(a.start)}`, `DTEND:${stamp(a.end)}`,
    `SUMMARY:${escape(a.description || 'Termin')}`, `URL:${location.origin}/?appointment=${a.id}`, 'END:VEVENT', 'END:VCALENDAR',
  ];
  return `data:text/calendar;charset=utf-8,${encodeURIComponent(lines.join('\r\n'))}`;
}

function manage() {
  const a = state.appointment;
  const cancellable = a && ['booked', 'pending', 'proposed'].includes(a.status);
  const lookup = h('form', { onsubmit: (event) => { event.preventDefault(); findAppointments(new FormData(lookup)); } },
    h('label', { for: 'find-svnr' }, t('details.svnr')),
    h('input', { id: 'find-svnr', name: 'svnr', inputmode: 'numeric', maxlength: '10', required: true }),
    h('label', { for: 'find-birthDate' }, t('details.birthDate')),
    h('input', { id: 'find-birthDate', name: 'birthDate', type: 'date', required: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, t('manage.find'))));
  return h('section', {},
    heading(t('manage.heading')),
    a ? appointmentSummary(a) : null,
    cancellable && h('div', { class: 'actions' },
      a.slot?.length && h('button', { type: 'button', class: 'secondary', onclick: () => startMove(a) }, t('manage.move')),
      h('button', { type: 'button', class: 'danger', onclick: () => cancel(a) }, t('manage.cancel'))),
    state.found && h('ul', { class: 'cards' }, state.found.map((f) => h('li', {}, appointmentSummary(f),
      h('a', { class: 'button secondary', href: `/?appointment=${encodeURIComponent(f.id)}` }, t('manage.open'))))),
    !a && lookup,
    h('p', {}, h('a', { href: '/' }, t('manage.new'))));
}

/** Moving: a week of the same schedule's free slots, a hold on the new one, then a PUT with it. */
function startMove(appointment) {
  attempt(async () => {
    const slot = await get(appointment.slot[0].reference);
    const schedule = await get(slot.schedule.reference);
    const role = schedule.actor.find((actor) => actor.reference.startsWith('PractitionerRole/'));
    const name = appointment.participant?.find((p) => p.actor?.reference === role?.reference)?.actor?.display || role?.display || '';
    state.moving = appointment;
    await loadWeek({ provider: { role: { id: role?.reference.split('/')[1] }, name }, schedule, weekStart: monday(viennaDate(slot.start)) });
  });
}

function moveConfirm() {
  const { held, moving } = state;
  return h('section', {},
    heading(t('move.confirm.heading')),
    appointmentSummary(moving),
    h('p', { class: 'chosen' }, t('move.to', formatDateTime(held.slot.start))),
    countdownTimer(held),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => move(moving, held) }, t('move.submit')),
      h('button', { type: 'button', class: 'secondary', onclick: () => attempt(async () => { await releaseHold(); await loadWeek(state); }) }, t('details.other'))));
}

/** The server moves the appointment when only its slots change (times follow), taking the held slot. */
function move(appointment, held) {
  attempt(async () => {
    const moved = await update({ ...appointment, slot: [{ reference: `Slot/${held.slot.id}` }] }, { 'X-Hold-Token': [tabToken, held.token].join(',') });
    clearInterval(countdown);
    state.held = null;
    state.moving = null;
    show({ step: 'manage', appointment: moved, message: notice(t('move.done'), 'success') });
  });
}

function cancel(appointment) {
  attempt(async () => {
    const cancelled = await update({ ...appointment, status: 'cancelled' });
    show({ appointment: cancelled, message: notice(t('manage.cancelled'), 'success') });
  });
}

function findAppointments(data) {
  attempt(async () => {
    const query = new URLSearchParams({
      'patient.identifier': `${SVNR_SYSTEM}|${String(data.get('svnr')).trim()}`,
      'patient.birthdate': String(data.get('birthDate')),
      status: 'booked,pending', date: `ge${viennaDate(Date.now())}`, _sort: 'date',
    });
    const found = resources(await get(`Appointment?${query}`)).filter((r) => r.resourceType === 'Appointment');
    show({ found, message: found.length ? null : notice(t('manage.none')) });
  });
}

// --- Start ----------------------------------------------------------------------------------

window.addEventListener('pagehide', () => { releaseHold(); });

async function start() {
  const wanted = new URLSearchParams(location.search).get('appointment');
  if (new URLSearchParams(location.search).has('manage') || wanted) {
    state.step = 'manage';
    if (wanted) {
      try {
        state.appointment = await get(`Appointment/${encodeURIComponent(wanted)}`);
      } catch (error) {
        state.message = failure(error);
      }
    }
    render();
    return;
  }
  render();
  await attempt(async () => show({ services: await loadServices() }));
}

start();
