// Termin's web app in a real browser (Debian's chromium driven by playwright-core), against a
// running `termin serve --demo --demo-scale tiny`. Run by crates/termin/tests/web_app.rs:
//   node web_app.mjs <scenario> <server root URL> <screenshot directory>
// Scenarios: `booking` (a patient books, the staff calendar shows it, confirms a pending booking
// and blocks an afternoon, the patient moves and cancels), `race` (two patients want the same slot: the
// one whose reservation lapsed is offered the alternatives the server proposes, and books one) and
// `staff` (the practice moves a booking with a reason, and generates slots after a preview) and
// `login` (authorization on: staff log in by SMART on FHIR at the test's OpenID Connect provider).
// Every page state is checked with axe-core. Waiting is Playwright's auto-waiting on locators
// and polling for conditions, never a fixed sleep. Exits non-zero with the reason on failure.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [scenario, root, shots] = process.argv.slice(2);
const CHROMIUM = process.env.TERMIN_TEST_CHROMIUM || '/usr/bin/chromium';
const SVNR_SYSTEM = 'urn:oid:1.2.40.0.10.1.4.3.1';
const WAIT = 60_000;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// --- The FHIR API, for set-up and to check what the clicks did ---------------------------------

async function fhir(method, path, body, headers = {}) {
  const response = await fetch(`${root}/fhir/${path}`, {
    method,
    headers: { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json', ...headers },
    body: body && JSON.stringify(body),
  });
  const json = await response.json();
  check(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json).slice(0, 500)}`);
  return json;
}
const found = (bundle, type) => (bundle.entry || []).map((e) => e.resource).filter((r) => r.resourceType === type);
const viennaDate = (instant) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Vienna' }).format(new Date(instant));

/** The provider the patient looks for: the first seeded schedule's role, its service and postal code. */
async function seededProvider() {
  const schedule = await fhir('GET', 'Schedule/seed-schedule-0');
  const service = await fhir('GET', schedule.serviceType[0].reference.reference);
  const location = await fhir('GET', service.location[0].reference);
  const role = schedule.actor.find((a) => a.reference.startsWith('PractitionerRole/'));
  return { schedule: schedule.id, service: service.type[0].text, zip: location.address.postalCode.slice(0, 2), role };
}

/** The first free slot of a schedule that starts at least an hour from now. */
async function freeSlot(schedule, after = Date.now() + 3600_000) {
  const slots = found(await fhir('GET', `Slot?schedule=Schedule/${schedule}&status=free&start=ge${viennaDate(Date.now())}&_sort=start&_count=200`), 'Slot');
  const slot = slots.find((s) => Date.parse(s.start) > after);
  check(slot, `Schedule/${schedule} has no free slot`);
  return slot;
}

// --- The browser --------------------------------------------------------------------------------

async function accessible(page, what) {
  const result = await page.evaluate(`${axeSource}\n;axe.run(document, { resultTypes: ['violations'] })`);
  const violations = result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`);
  check(!violations.length, `accessibility of ${what}:\n  ${violations.join('\n  ')}`);
}

async function screenshot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

/** Every page opened, for screenshots when a scenario fails. */
const pages = [];

async function newPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, locale: 'de-AT', timezoneId: 'Europe/Vienna' });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) errors.push(message.text()); });
  page.scriptErrors = errors;
  pages.push(page);
  return page;
}

/** Search (optionally with preferred weekdays and time of day) → providers → the week of the wanted provider. */
async function openWeek(page, provider, preferred = { days: [], daytime: 'egal' }, shot = null) {
  await page.goto(`${root}/`);
  await page.getByLabel('Leistung').selectOption({ label: provider.service });
  await page.getByLabel('Postleitzahl (oder ihr Anfang)').fill(provider.zip);
  for (const day of preferred.days) await page.getByLabel(day, { exact: true }).check();
  await page.getByLabel('Tageszeit').selectOption({ label: preferred.daytime });
  await accessible(page, 'the search form');
  if (shot) await screenshot(page, shot);
  await page.getByRole('button', { name: 'Anbieter suchen' }).click();
  await page.getByRole('heading', { name: `Anbieter für ${provider.service}` }).waitFor();
  // The earliest free slot the server names for the provider (structured in its answer).
  await page.getByText(/^Nächster freier Termin: /).first().waitFor();
  await accessible(page, 'the providers');
  await page.getByRole('button', { name: `Termine ansehen: ${provider.role.display.split(' – ')[0]}` }).first().click();
  await page.getByRole('heading', { name: /^Freie Termine bei/ }).waitFor();
}

/** The week's button of `slot`, moving forward week by week until it shows. */
async function slotButton(page, slot) {
  const label = await page.evaluate((start) => {
    const zone = { timeZone: 'Europe/Vienna' };
    const date = new Intl.DateTimeFormat('de-AT', { ...zone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(start));
    const time = new Intl.DateTimeFormat('de-AT', { ...zone, hour: '2-digit', minute: '2-digit' }).format(new Date(start));
    return `Termin am ${date}, ${time} reservieren`;
  }, slot.start);
  for (let week = 0; week < 6; week++) {
    const button = page.getByRole('button', { name: label, exact: true });
    if (await button.count()) return button;
    await page.getByRole('button', { name: 'Nächste Woche →' }).click();
    await page.getByText(/^Woche /).waitFor();
  }
  throw new Error(`no button ${label}`);
}

async function fillDetails(page, patient) {
  await page.getByLabel('Vorname').fill(patient.given);
  await page.getByLabel('Nachname').fill(patient.family);
  await page.getByLabel('Geburtsdatum').fill(patient.birthDate);
  await page.getByLabel('Geschlecht').selectOption(patient.gender);
  await page.getByLabel('Sozialversicherungsnummer').fill(patient.svnr);
  await page.getByLabel('E-Mail (optional)').fill(patient.email);
}

const ANNA = { given: 'Anna', family: 'Huber', birthDate: '1980-01-01', gender: 'female', svnr: '1237010180', email: 'anna.huber@example.at' };
const BERT = { given: 'Bert', family: 'Gruber', birthDate: '1975-05-05', gender: 'male', svnr: '1002050575', email: 'bert@example.at' };

// --- Scenarios -----------------------------------------------------------------------------------

async function booking(browser) {
  const provider = await seededProvider();
  const slot = await freeSlot(provider.schedule);
  const page = await newPage(browser);
  await openWeek(page, provider, undefined, 'booking-search-desktop');
  await accessible(page, 'the week view');
  await screenshot(page, 'booking-week-desktop');
  await (await slotButton(page, slot)).click();

  // Held: the countdown runs; a wrong SVNR check digit is refused before anything is sent.
  await page.getByRole('timer').getByText(/Für Sie reserviert: noch \d+:\d\d Minuten/).waitFor();
  check((await fhir('GET', `Slot/${slot.id}`)).status === 'busy-tentative', 'the slot is held');
  await fillDetails(page, { ...ANNA, svnr: '1234010180' });
  await accessible(page, 'the details form');
  await page.getByRole('button', { name: 'Verbindlich buchen' }).click();
  await page.getByRole('alert').getByText('Die Sozialversicherungsnummer ist ungültig (Prüfziffer).').waitFor();
  await screenshot(page, 'booking-details-desktop');
  await page.getByLabel('Sozialversicherungsnummer').fill(ANNA.svnr);
  await page.getByRole('button', { name: 'Verbindlich buchen' }).click();

  // Confirmation, with the .ics and the cancel link.
  await page.getByRole('heading', { name: 'Ihr Termin ist gebucht' }).waitFor();
  await accessible(page, 'the confirmation');
  await screenshot(page, 'booking-confirmation-desktop');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'In den Kalender (.ics)' }).click()]);
  const ics = readFileSync(await download.path(), 'utf8');
  const utc = new Date(slot.start).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  check(ics.includes('BEGIN:VEVENT') && ics.includes(`DTSTART:${utc}`), `the .ics names the slot's start ${utc}: ${ics}`);
  const appointments = found(await fhir('GET', `Appointment?slot=Slot/${slot.id}&status=booked`), 'Appointment');
  check(appointments.length === 1, `one booked appointment on the slot: ${appointments.length}`);
  const appointment = appointments[0];
  const patient = await fhir('GET', appointment.subject.reference);
  check(patient.identifier[0].value === ANNA.svnr && patient.name[0].family === ANNA.family, 'the patient is stored as entered');

  // The staff calendar shows the booking, with the patient.
  const staff = await newPage(browser);
  await staff.goto(`${root}/staff?schedule=${provider.schedule}&date=${viennaDate(slot.start)}`);
  const booked = staff.getByRole('button', { name: /gebucht Anna Huber/ });
  await booked.click();
  await staff.getByRole('heading', { name: /^Details:/ }).waitFor();
  await staff.getByText(ANNA.svnr).waitFor();
  await accessible(staff, 'the staff calendar with details');
  await staff.getByLabel('Name oder Sozialversicherungsnummer').fill('Huber');
  await staff.getByRole('button', { name: 'Suchen' }).click();
  const card = staff.getByRole('listitem').filter({ has: staff.getByRole('heading', { name: `Anna Huber · ${ANNA.birthDate} · ${ANNA.svnr}` }) });
  await card.getByText(/: gebucht$/).waitFor();
  await accessible(staff, 'the patient search');

  // A pending booking (its schedule wants manual confirmation), confirmed by staff.
  const pendingSchedule = 'seed-schedule-2';
  const schedule = await fhir('GET', `Schedule/${pendingSchedule}`);
  schedule.extension = [{ url: 'https://termin.at/fhir/StructureDefinition/manual-confirmation', valueBoolean: true }];
  await fhir('PUT', `Schedule/${pendingSchedule}`, schedule);
  const pendingSlot = await freeSlot(pendingSchedule);
  const result = await fhir('POST', 'Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'appointment-resource', resource: {
    resourceType: 'Appointment', status: 'proposed', slot: [{ reference: `Slot/${pendingSlot.id}` }],
    subject: { reference: 'Patient/seed-patient-1', display: 'Seed Patient' },
    participant: [{ actor: { reference: 'Patient/seed-patient-1' }, status: 'accepted' }],
  } }] });
  const pending = result.parameter.find((p) => p.name === 'appointment').resource;
  check(pending.status === 'pending', `the booking waits for confirmation: ${pending.status}`);
  const day = viennaDate(pendingSlot.start);
  await staff.goto(`${root}/staff?schedule=${pendingSchedule}&date=${day}`);
  await staff.getByRole('button', { name: /wartet/ }).first().waitFor();
  await screenshot(staff, 'staff-day-desktop');
  await staff.getByRole('button', { name: /wartet/ }).first().click();
  await staff.getByRole('button', { name: 'Bestätigen' }).click();
  await staff.getByRole('status').getByText('Gespeichert.').waitFor();
  check((await fhir('GET', `Appointment/${pending.id}`)).status === 'booked', 'the pending booking is confirmed');

  // Block the afternoon of that day: its free slots from 13:00 become busy-unavailable.
  await staff.getByLabel('Tag der Sperre').fill(day);
  await staff.getByLabel('Von').fill('13:00');
  await staff.getByLabel('Bis').fill('18:00');
  await staff.getByRole('button', { name: 'Zeitraum sperren' }).click();
  await staff.getByRole('status').getByText(/Slot\(s\) gesperrt\./).waitFor();
  const afternoon = found(await fhir('GET', `Slot?schedule=Schedule/${pendingSchedule}&start=ge${day}T13:00:00&start=lt${day}T18:00:00`), 'Slot');
  check(afternoon.length > 0 && afternoon.every((s) => s.status !== 'free'), `no free slot left in the afternoon: ${afternoon.map((s) => s.status)}`);
  check(afternoon.some((s) => s.status === 'busy-unavailable'), 'the afternoon is blocked');
  await staff.getByLabel('Ansicht').selectOption('week');
  await staff.getByRole('button', { name: /gesperrt/ }).first().waitFor();
  await accessible(staff, 'the staff week');
  await screenshot(staff, 'staff-week-desktop');
  await staff.setViewportSize(PHONE);
  await staff.getByLabel('Ansicht').selectOption('day');
  await screenshot(staff, 'staff-day-phone');

  // The patient finds the appointment by SVNR and birth date.
  const lookup = await newPage(browser, PHONE);
  await lookup.goto(`${root}/`);
  await lookup.getByRole('link', { name: /Termin finden oder absagen/ }).click();
  await lookup.getByLabel('Sozialversicherungsnummer').fill(ANNA.svnr);
  await lookup.getByLabel('Geburtsdatum').fill(ANNA.birthDate);
  await lookup.getByRole('button', { name: 'Termine suchen' }).click();
  await lookup.getByRole('link', { name: 'Öffnen' }).waitFor();
  check(await lookup.getByRole('link', { name: 'Öffnen' }).count() === 1, 'one upcoming appointment is found');
  await accessible(lookup, 'the appointment lookup');

  // With the link from the confirmation the patient moves the appointment to a later slot of
  // the same schedule, then cancels it.
  const later = await freeSlot(provider.schedule, Date.parse(slot.start));
  await page.getByRole('link', { name: 'Termin verschieben oder absagen' }).click();
  await page.getByRole('heading', { name: 'Ihr Termin' }).waitFor();
  await page.getByRole('button', { name: 'Termin verschieben' }).click();
  await page.getByRole('heading', { name: /^Neuen Termin bei/ }).waitFor();
  await (await slotButton(page, later)).click();
  await page.getByRole('button', { name: 'Verschiebung bestätigen' }).click();
  await page.getByRole('status').getByText('Der Termin ist verschoben.').waitFor();
  const moved = await fhir('GET', `Appointment/${appointment.id}`);
  check(moved.slot[0].reference === `Slot/${later.id}` && moved.start === later.start, `moved to the later slot: ${JSON.stringify(moved.slot)} ${moved.start}`);
  check((await fhir('GET', `Slot/${slot.id}`)).status === 'free', 'the first slot is free again');
  await page.getByRole('button', { name: 'Termin absagen' }).click();
  await page.getByRole('status').getByText('Der Termin ist abgesagt.').waitFor();
  await accessible(page, 'the cancellation');
  check((await fhir('GET', `Appointment/${appointment.id}`)).status === 'cancelled', 'the appointment is cancelled');
  check((await fhir('GET', `Slot/${later.id}`)).status === 'free', 'its slot is free again');

  // English, at phone width.
  const phone = await newPage(browser, PHONE);
  await openWeek(phone, provider, { days: ['Mi', 'Do'], daytime: 'vormittags' });
  await phone.getByRole('button', { name: 'English' }).click();
  await phone.getByRole('heading', { name: /^Free slots with/ }).waitFor();
  await accessible(phone, 'the English week at phone width');
  await screenshot(phone, 'booking-week-phone');
  for (const p of [page, staff, phone, lookup]) check(!p.scriptErrors.length, `script errors: ${p.scriptErrors.join('; ')}`);
}

async function race(browser) {
  const provider = await seededProvider();
  const slot = await freeSlot(provider.schedule);
  const late = await newPage(browser);
  const early = await newPage(browser);

  // The late patient reserves first, then lets the reservation lapse (the server holds briefly).
  await openWeek(late, provider);
  await (await slotButton(late, slot)).click();
  await late.getByRole('timer').getByText('Die Reservierung ist abgelaufen', { exact: false }).waitFor();
  await fillDetails(late, BERT);

  // Meanwhile the slot is free again for others: the other patient books it.
  await openWeek(early, provider);
  await (await slotButton(early, slot)).click();
  await fillDetails(early, ANNA);
  await early.getByRole('button', { name: 'Verbindlich buchen' }).click();
  await early.getByRole('heading', { name: 'Ihr Termin ist gebucht' }).waitFor();

  // The late patient loses and is offered the server's alternatives; books the first of them.
  await late.getByRole('button', { name: 'Verbindlich buchen' }).click();
  await late.getByRole('alert').getByText('Der Termin wurde inzwischen vergeben', { exact: false }).waitFor();
  const offered = late.locator('.alternatives').getByRole('button');
  await offered.first().waitFor();
  check(await offered.count() > 0, 'alternatives are offered');
  await accessible(late, 'the alternatives');
  await screenshot(late, 'booking-alternatives-desktop');
  await offered.first().click();
  // The new hold replaces the view (and its alternatives) once the server granted it.
  await late.locator('.alternatives').waitFor({ state: 'detached' });
  await late.getByRole('timer').waitFor();
  await late.getByRole('button', { name: 'Verbindlich buchen' }).click();
  await late.getByRole('heading', { name: 'Ihr Termin ist gebucht' }).waitFor();
  const booked = found(await fhir('GET', `Appointment?patient.identifier=${SVNR_SYSTEM}|${BERT.svnr}&status=booked`), 'Appointment');
  check(booked.length === 1 && booked[0].slot[0].reference !== `Slot/${slot.id}`, 'the late patient has another slot');
  for (const p of [late, early]) check(!p.scriptErrors.length, `script errors: ${p.scriptErrors.join('; ')}`);
}

/** A booked appointment on a free slot of `schedule`, through the API. */
async function bookThroughApi(schedule) {
  const slot = await freeSlot(schedule);
  const result = await fhir('POST', 'Appointment/$book', { resourceType: 'Parameters', parameter: [{ name: 'appointment-resource', resource: {
    resourceType: 'Appointment', status: 'proposed', slot: [{ reference: `Slot/${slot.id}` }],
    subject: { reference: 'Patient/seed-patient-1', display: 'Seed Patient' },
    participant: [{ actor: { reference: 'Patient/seed-patient-1' }, status: 'accepted' }],
  } }] });
  return { slot, appointment: result.parameter.find((p) => p.name === 'appointment').resource };
}

async function staffScenario(browser) {
  const provider = await seededProvider();
  const { slot, appointment } = await bookThroughApi(provider.schedule);
  check(appointment.status === 'booked', `booked: ${appointment.status}`);
  const staff = await newPage(browser);

  // Move the booking to a later free slot, with a reason.
  const later = await freeSlot(provider.schedule, Date.parse(slot.start));
  await staff.goto(`${root}/staff?schedule=${provider.schedule}&date=${viennaDate(slot.start)}`);
  await staff.getByRole('button', { name: /gebucht Seed Patient/ }).click();
  await staff.getByRole('button', { name: 'Verschieben' }).click();
  await staff.getByRole('heading', { name: /^Termin verschieben/ }).waitFor();
  await staff.getByLabel('Neuer Termin').selectOption(later.id);
  await staff.getByLabel('Grund').fill('Ärztin auf Fortbildung');
  await accessible(staff, 'the move form');
  await screenshot(staff, 'staff-move-desktop');
  await staff.getByRole('button', { name: 'Verschiebung speichern' }).click();
  await staff.getByRole('status').getByText('Der Termin ist verschoben.').waitFor();
  const moved = await fhir('GET', `Appointment/${appointment.id}`);
  check(moved.slot[0].reference === `Slot/${later.id}` && moved.start === later.start, `moved: ${JSON.stringify(moved.slot)} ${moved.start}`);
  check((moved.note || []).some((n) => n.text.includes('Ärztin auf Fortbildung')), `the reason is noted: ${JSON.stringify(moved.note)}`);
  check((await fhir('GET', `Slot/${slot.id}`)).status === 'free', 'the old slot is free again');

  // Generate a week of slots far beyond the demo's: the preview changes nothing, applying creates them.
  const schedule = await fhir('GET', `Schedule/${provider.schedule}`);
  schedule.extension = [...(schedule.extension || []), { url: 'https://termin.at/fhir/StructureDefinition/slot-generation', extension: [
    { url: 'slot-duration', valueDuration: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } }] }];
  await fhir('PUT', `Schedule/${provider.schedule}`, schedule);
  const first = viennaDate(Date.now() + 300 * 86400_000);
  const last = viennaDate(Date.now() + 306 * 86400_000);
  const generated = async () => found(await fhir('GET', `Slot?schedule=Schedule/${provider.schedule}&start=ge${first}&start=le${last}T23:59:59&_count=500`), 'Slot');
  check((await generated()).length === 0, 'no slots in the window yet');
  await staff.reload();
  await staff.getByRole('button', { name: /frei/ }).first().waitFor();
  await staff.getByLabel('Erster Tag').fill(first);
  await staff.getByLabel('Letzter Tag').fill(last);
  await staff.getByRole('button', { name: 'Vorschau' }).click();
  const preview = staff.getByText(/^Vorschau: \d+ neu/);
  await preview.waitFor();
  const wanted = Number(/(\d+) neu/.exec(await preview.textContent())[1]);
  check(wanted > 0, `the preview creates slots: ${await preview.textContent()}`);
  check((await generated()).length === 0, 'the preview changed nothing');
  await accessible(staff, 'the generation preview');
  // The panel itself: it lies below the calendar.
  await staff.locator('form[aria-labelledby=generate-heading]').screenshot({ path: join(shots, 'staff-generate-desktop.png') });
  await staff.getByRole('button', { name: 'Slots erzeugen' }).click();
  await staff.getByText(new RegExp(`^Erzeugt: ${wanted} neu`)).waitFor();
  const made = await generated();
  check(made.length === wanted && made.every((s) => s.status === 'free'), `${wanted} free slots generated: ${made.length}`);
  check(!staff.scriptErrors.length, `script errors: ${staff.scriptErrors.join('; ')}`);
}

/** Authorization is on: the calendar sends staff to the identity provider's login and back. */
async function login(browser) {
  const slot = await fhir('GET', 'Slot?status=free&_count=1').then((bundle) => found(bundle, 'Slot')[0]);
  const unauthenticated = await fetch(`${root}/fhir/Slot/${slot.id}`, {
    method: 'PUT', headers: { 'Content-Type': 'application/fhir+json' }, body: JSON.stringify({ ...slot, status: 'busy-unavailable' }),
  });
  check(unauthenticated.status === 401, `a change wants a token: ${unauthenticated.status}`);
  const staff = await newPage(browser);
  await staff.goto(`${root}/staff?schedule=seed-schedule-0&view=week`);
  await staff.getByText('Der Kalender zeigt Patientendaten: bitte melden Sie sich an.').waitFor();
  await accessible(staff, 'the login prompt');
  await screenshot(staff, 'staff-login-desktop');
  await staff.getByRole('button', { name: 'Anmelden' }).click();

  // The provider's development login: any name and password, then consent.
  await staff.locator('input[name=login]').fill('verena');
  await staff.locator('input[name=password]').fill('geheim');
  await staff.getByRole('button', { name: 'Sign-in' }).click();
  await staff.getByRole('button', { name: 'Continue' }).click();

  // Back in the calendar with a token: the schedules and slots load, the view asked for is kept.
  await staff.waitForURL(`${root}/staff?schedule=seed-schedule-0&view=week`);
  await staff.getByRole('button', { name: 'Abmelden' }).waitFor();
  const free = staff.getByRole('button', { name: /frei$/ }).first();
  await free.waitFor();
  check(await staff.getByLabel('Kalender').locator('option').count() > 0, 'the schedules are listed');
  check(await staff.getByLabel('Ansicht').inputValue() === 'week', 'the week view asked for is shown');
  await free.click();
  await staff.getByRole('button', { name: 'Sperren', exact: true }).click();
  await staff.getByRole('status').getByText('Gespeichert.').waitFor();
  await accessible(staff, 'the calendar after login');
  check(!staff.scriptErrors.length, `script errors: ${staff.scriptErrors.join('; ')}`);
}

const scenarios = { booking, race, staff: staffScenario, login };
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  await scenarios[scenario](browser);
  console.log(`web app scenario ${scenario}: passed`);
} catch (error) {
  console.error(`web app scenario ${scenario} failed: ${error.stack || error}`);
  for (const [i, page] of pages.entries()) {
    console.error(`page ${i} at ${page.url()}, script errors: ${page.scriptErrors.join('; ') || 'none'}`);
    await page.screenshot({ path: join(shots, `failed-${scenario}-${i}.png`) }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
