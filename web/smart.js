// SMART on FHIR login (authorization code with PKCE, RFC 7636) for a page of this server, at the
// identity provider its `.well-known/smart-configuration` names. The public client id is
// `termin-web`; its redirect URI is the page itself. The access token lives in the tab's
// sessionStorage only (gone with the tab), and every FHIR request presents it.

import { get, setAccessToken } from './fhir.js';

/** The client id the identity provider knows the web app by (a public client, no secret). */
export const CLIENT_ID = 'termin-web';
const PENDING = 'termin-login-pending';
const TOKEN = 'termin-access-token';

const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => `${location.origin}${location.pathname}`;

/**
 * The server's SMART configuration, or `null` when authorization is off (it answers 404 then).
 * Signs the page in with a token from this tab's earlier login, or finishes a login the provider
 * redirected back from. Resolves to { configuration, signedIn, loginError }.
 */
export async function startSession() {
  let configuration;
  try {
    configuration = await get('.well-known/smart-configuration');
  } catch (error) {
    if (error.status === 404) return { configuration: null, signedIn: false, loginError: null };
    throw error;
  }
  const params = new URLSearchParams(location.search);
  let loginError = null;
  if (params.has('code') || params.has('error')) {
    try {
      await finishLogin(configuration, params);
    } catch (error) {
      loginError = error.message;
    }
  }
  const saved = JSON.parse(sessionStorage.getItem(TOKEN) || 'null');
  const signedIn = Boolean(saved && saved.expires > Date.now());
  setAccessToken(signedIn ? saved.token : null);
  return { configuration, signedIn, loginError };
}

/** Sends the browser to the provider's login, asking for `scope`; the page's query comes back after. */
export async function login(configuration, scope) {
  const verifier = random();
  const state = random();
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, query: location.search }));
  const query = new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: redirectUri(), scope, state,
    code_challenge: challenge, code_challenge_method: 'S256', aud: `${location.origin}/fhir`,
  });
  location.assign(`${configuration.authorization_endpoint}?${query}`);
}

export function logout() {
  sessionStorage.removeItem(TOKEN);
  setAccessToken(null);
}

/** The code for a token (with the PKCE verifier); the page's own query is restored. */
async function finishLogin(configuration, params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', `${location.pathname}${pending?.query || ''}`);
  if (params.has('error')) throw new Error(params.get('error_description') || params.get('error'));
  if (!pending || params.get('state') !== pending.state) throw new Error('login: the answer does not belong to this tab');
  const response = await fetch(configuration.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri(),
      client_id: CLIENT_ID, code_verifier: pending.verifier,
    }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || !answer.access_token) throw new Error(`login: ${answer.error_description || answer.error || response.status}`);
  const expires = Date.now() + 1000 * (Number(answer.expires_in) || 300);
  sessionStorage.setItem(TOKEN, JSON.stringify({ token: answer.access_token, expires }));
}
