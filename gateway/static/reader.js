// Who the reader is, and their history over the service's REST API (the durable memory; see the README).
//
// Every socket says `hello` first, with the reader token kept in localStorage; the server's `welcome`
// hands out a token when there was none. REST calls carry it as a bearer token. Tokens never go into a URL.
// The answer to `hello` says whether the service keeps history at all: a `welcome` (it does) or an
// `invalid_frame` refusal (a service without durable memory: no list, no ratings, nothing fetched).

const TOKEN_KEY = 'physical-ai-tutor:reader';
const REASONS = ['wrong', 'not_in_book', 'unclear', 'other'];

export { REASONS };

export class HistoryUnavailable extends Error {}

export class Reader {
  /**
   * `apiBase`: the service's address ending in "/" (the page's own, or the widget's data-tutor-url).
   * `idToken`: when the book has its own sign-in, a function giving the signed-in reader's id token (a
   * JWT, or a promise of one) or null; asked afresh for every hello and API call, so it may rotate.
   */
  constructor(apiBase, { idToken = null } = {}) {
    this.apiBase = apiBase;
    this.idToken = idToken;
    this.token = this.loadToken();
    this.available = null; // unknown until a hello is answered
    this.greeted = false; // a hello was answered (welcome or refusal) on some socket
    this.waiting = [];
    this.watchers = [];
  }

  /** Calls `onChange(available)` whenever it becomes known whether the service keeps history. */
  watch(onChange) {
    this.watchers.push(onChange);
    if (this.available !== null) onChange(this.available);
  }

  setAvailable(available) {
    const changed = this.available !== available;
    this.available = available;
    if (changed) for (const onChange of this.watchers) onChange(available);
  }

  loadToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || null;
    } catch {
      return null; // storage refused: a new reader on every page
    }
  }

  saveToken(token) {
    this.token = token;
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage refused: this page keeps the token in memory only
    }
  }

  async currentIdToken() {
    try {
      const token = await this.idToken?.();
      return typeof token === 'string' && token ? token : null;
    } catch {
      return null; // the book's sign-in failed: carry on as this device's reader
    }
  }

  /**
   * The socket's first frame: this device's reader token, and the id token when signed in (the service
   * then joins this device's history to the account). `anonymous` leaves the id token out (it was refused).
   */
  async hello({ anonymous = false } = {}) {
    const frame = { type: 'hello' };
    if (this.token) frame.reader_token = this.token;
    const idToken = anonymous ? null : await this.currentIdToken();
    if (idToken) frame.id_token = idToken;
    return frame;
  }

  /** The server's answer to `hello`: a new reader's token is kept. */
  welcomed(event) {
    if (event.reader_token) this.saveToken(event.reader_token);
    this.setAvailable(true);
    this.settle();
  }

  /** The service does not know `hello` (no durable memory): there is no history to show. */
  unsupported() {
    this.setAvailable(false);
    this.settle();
  }

  settle() {
    this.greeted = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }

  /** The stored token is not (or no longer) a reader's: forget it; the next hello makes a new reader. */
  refused() {
    this.saveToken(null);
  }

  /** Resolves once the page's first hello is answered (a new reader's token comes with it). */
  async ready() {
    if (this.greeted) return;
    await new Promise((resolve) => this.waiting.push(resolve));
  }

  async call(method, path, body) {
    await this.ready();
    if (this.available === false) throw new HistoryUnavailable('this service keeps no history');
    const bearer = (await this.currentIdToken()) ?? this.token; // signed in: the account's history
    if (!bearer) throw new HistoryUnavailable('no reader yet');
    const headers = { Authorization: `Bearer ${bearer}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(new URL(path, this.apiBase), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new HistoryUnavailable('the service could not be reached');
    }
    if (response.ok) {
      return response.status === 204 ? null : response.json();
    }
    const error = await response.json().catch(() => null);
    const code = error?.error?.code;
    if (response.status === 404 && !code) throw new HistoryUnavailable('this service keeps no history');
    if (response.status === 401 && bearer === this.token) this.refused();
    const failure = new Error(error?.error?.message ?? `HTTP ${response.status}`);
    failure.status = response.status;
    failure.code = code ?? null;
    throw failure;
  }

  listConversations(cursor) {
    return this.call('GET', cursor ? `api/conversations?cursor=${encodeURIComponent(cursor)}` : 'api/conversations');
  }

  conversation(id) {
    return this.call('GET', `api/conversations/${encodeURIComponent(id)}`);
  }

  deleteConversation(id) {
    return this.call('DELETE', `api/conversations/${encodeURIComponent(id)}`);
  }

  async forgetMe() {
    await this.call('DELETE', 'api/readers/me');
    this.saveToken(null);
  }

  /** rating: 'up' | 'down'; reason one of REASONS or null; comment a string or null. */
  rate(turnId, { rating, reason = null, comment = null }) {
    return this.call('PUT', `api/turns/${encodeURIComponent(turnId)}/feedback`, { rating, reason, comment });
  }
}
