// The FHIR REST calls both pages make, against this server's own API (same origin).

const BASE = '/fhir';
const JSON_TYPE = 'application/fhir+json';

export const SVNR_SYSTEM = 'urn:oid:1.2.40.0.10.1.4.3.1';
export const ZONE = 'Europe/Vienna';

/** An answer the server refused; `outcome` is its OperationOutcome (or the Parameters' one). */
export class FhirError extends Error {
  constructor(status, body) {
    const outcome = outcomeOf(body);
    super(outcomeText(outcome) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.outcome = outcome;
  }
}

/** The SMART access token every request presents, once a login gave one (smart.js). */
let accessToken = null;
export const setAccessToken = (token) => { accessToken = token; };

/** `GET`/`POST`/`PUT` with FHIR JSON; resolves to { status, body, etag }, throws FhirError on 4xx/5xx. */
export async function request(method, path, { body, headers = {} } = {}) {
  const response = await fetch(path.startsWith('/') ? path : `${BASE}/${path}`, {
    method,
    headers: {
      Accept: JSON_TYPE,
      ...(body ? { 'Content-Type': JSON_TYPE } : {}),
      ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new FhirError(response.status, parsed);
  return { status: response.status, body: parsed, etag: response.headers.get('ETag') };
}

export const get = async (path) => (await request('GET', path)).body;

/** Every resource of a searchset page (matches and includes). */
export const resources = (bundle) => (bundle.entry || []).map((entry) => entry.resource).filter(Boolean);

/** A Parameters parameter's (or an extension's) resource or value[x]. */
function valueOf(element) {
  if (!element) return undefined;
  if (element.resource) return element.resource;
  const key = Object.keys(element).find((k) => k.startsWith('value'));
  return key ? element[key] : undefined;
}

/** A Parameters value by name: the resource, or the value[x]. */
export const parameter = (parameters, name) => valueOf((parameters?.parameter || []).find((p) => p.name === name));

/** Every Parameters parameter of this name, as an object of its parts' values by part name. */
export const parameterParts = (parameters, name) => (parameters?.parameter || []).filter((p) => p.name === name)
  .map((p) => Object.fromEntries((p.part || []).map((part) => [part.name, valueOf(part)])));

/** Every complex extension with this URL on `element`, as an object of its sub-extensions' values by URL. */
export const extensionParts = (element, url) => (element?.extension || []).filter((x) => x.url === url)
  .map((x) => Object.fromEntries((x.extension || []).map((sub) => [sub.url, valueOf(sub)])));

function outcomeOf(body) {
  if (body?.resourceType === 'OperationOutcome') return body;
  if (body?.resourceType === 'Parameters') return parameter(body, 'outcome');
  return undefined;
}

/** The texts of an outcome's errors and warnings (information when there is nothing else). */
export function outcomeText(outcome) {
  const issues = outcome?.issue || [];
  const serious = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  const shown = serious.length ? serious : issues.filter((i) => i.severity !== 'information');
  return shown.map((i) => i.details?.text || i.diagnostics).filter(Boolean).join(' ');
}

export const idOf = (reference) => reference?.reference?.split('/').pop();

/** `PUT` of a changed copy of a resource, guarded by the version it was read at. */
export async function update(resource, headers = {}) {
  const guard = resource.meta?.versionId ? { 'If-Match': `W/"${resource.meta.versionId}"` } : {};
  return (await request('PUT', `${resource.resourceType}/${resource.id}`, { body: resource, headers: { ...guard, ...headers } })).body;
}

/** `Slot/$hold` (`busy-tentative`) or its release (`free`), presenting the caller's hold tokens. */
export function hold(slotId, status, tokens) {
  return request('POST', 'Slot/$hold', {
    headers: { 'X-Hold-Token': tokens.join(',') },
    body: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'slot-reference', valueReference: { reference: `Slot/${slotId}` } },
        { name: 'slot-status', valueCode: status },
      ],
    },
  });
}
