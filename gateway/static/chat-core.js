// The chat itself, shared by the page at / and the book widget: turns, the socket protocol (wire protocol
// v1, see the README), rendering, and the conversation kept in localStorage across reloads.
//
// One turn streams at a time. Every event carries its stream id; a turn remembers the last one it applied,
// so after a reconnect it asks to `resume` from there and ignores anything it has already seen.

import { ChatConnection } from './connection.js';
import { el } from './dom.js';
import { FeedbackControl } from './feedback.js';
import { renderMarkdown, safeHref } from './markdown.js';

const MAX_STORED_TURNS = 40;
const MAX_SUGGESTIONS = 3;
// How long a socket waits for the answer to its `hello` before asking anyway (a service that never answers
// it would otherwise hold every question back).
const HELLO_TIMEOUT_MS = 5000;
const MAX_SELECTION_CHARS = 8000; // the service's default MAX_SELECTED_TEXT_CHARS
const DEFAULT_EXAMPLES = [
  'What does a URDF describe?',
  'How does a humanoid robot keep its balance?',
  'What is sim-to-real transfer?',
];

const ERROR_TEXT = {
  invalid_frame: 'The question could not be sent as written.',
  too_large: 'That is too long for the tutor. Please shorten the question or the selected passage.',
  unknown_turn: 'This answer is no longer available: the connection was away for too long.',
  cancelled: 'The answer was interrupted because the connection was lost.',
  timeout: 'The answer took too long and was stopped. Please ask again.',
  provider_error: 'The language model did not answer. Please ask again in a moment.',
  rate_limited: 'Too many questions at once.',
  busy: 'The tutor is busy right now.',
  worker_lost: 'The answer was interrupted on the server. Please ask again.',
  unavailable: 'The tutor is temporarily unavailable. Please try again shortly.',
  internal: 'Something went wrong on our side. Please ask again.',
};

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  waiting: 'Connection lost. Reconnecting…',
  offline: 'You are offline. The answer continues when the connection is back.',
};

/** What to tell the reader about an `error` event, in plain words. */
export function errorText(error, stoppedByReader = false) {
  if (error.code === 'cancelled' && stoppedByReader) return 'Stopped.';
  let text = ERROR_TEXT[error.code] ?? 'Something went wrong. Please ask again.';
  if (error.code === 'rate_limited' || error.code === 'busy') {
    const seconds = Math.ceil(error.retry_after ?? 0);
    text += seconds > 0 ? ` Please try again in ${seconds} second${seconds === 1 ? '' : 's'}.` : ' Please try again in a moment.';
  }
  return text;
}

/** Orders stream ids ("1763740000000-0"): negative, zero or positive like a comparator. */
export function compareIds(a, b) {
  const [aMs, aSeq] = a.split('-').map(Number);
  const [bMs, bSeq] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}

/** Citation offsets count characters (code points); JavaScript strings count UTF-16 units. */
function codeUnitOffsets(text) {
  if (!/[\uD800-\uDFFF]/.test(text)) return (n) => n;
  const units = [];
  let at = 0;
  for (const ch of text) {
    units.push(at);
    at += ch.length;
  }
  units.push(at);
  return (n) => units[Math.min(n, units.length - 1)];
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

class ChatStore {
  constructor(key) {
    this.key = key;
  }
  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.key));
      if (saved?.v === 1 && Array.isArray(saved.turns)) return saved;
    } catch {
      // unreadable or unavailable storage: start afresh
    }
    return { v: 1, conversationId: null, turns: [] };
  }
  save(state) {
    try {
      localStorage.setItem(this.key, JSON.stringify({ ...state, turns: state.turns.slice(-MAX_STORED_TURNS) }));
    } catch {
      // storage full or refused (private mode): the conversation just won't survive a reload
    }
  }
}

export class Chat {
  /**
   * root: the element to fill. options: socketUrl (ws(s)://…/ws/chat), storageKey, examples,
   * sameTabLinks (open book links in this tab when they are on this site: the widget inside the book),
   * compact (a small panel: source lists start folded), reader (a Reader: says hello on every socket and
   * rates answers), onFinished(turn) (a turn has ended: the conversation list may have changed).
   */
  constructor(
    root,
    { socketUrl, storageKey, examples = DEFAULT_EXAMPLES, sameTabLinks = false, compact = false, reader = null, onFinished = null },
  ) {
    this.store = new ChatStore(storageKey);
    this.state = this.store.load();
    this.sameTabLinks = sameTabLinks;
    this.compact = compact;
    this.reader = reader;
    this.onFinished = onFinished;
    this.greeting = false;
    this.greetingTimer = 0;
    this.greetedWaiters = [];
    this.ratings = false; // shown once the service is known to keep history
    this.selection = null;
    this.views = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.build(root, examples);
    this.connection = new ChatConnection(socketUrl, {
      onOpen: () => this.onOpen(),
      onEvent: (event) => this.onEvent(event),
      onState: (state) => this.showConnection(state),
    });
    for (const turn of this.state.turns) this.renderTurn(turn);
    this.updateComposer();
    this.showLatest();
    this.connection.start();
  }

  // --- building the interface ----------------------------------------------------------------------

  build(root, examples) {
    this.root = el('div', 'tutor-chat');
    this.connectionNote = el('div', 'connection-note');
    this.connectionNote.hidden = true;
    this.announcer = el('div', 'visually-hidden');
    this.announcer.setAttribute('role', 'status');
    this.scroller = el('div', 'scroller');
    this.empty = el('div', 'empty-state');
    this.empty.append(el('p', 'empty-title', 'Ask anything about the book.'));
    this.empty.append(el('p', 'empty-text', 'Answers come from its chapters, with links to the passages they quote.'));
    const list = el('ul', 'examples');
    for (const example of examples) {
      const button = el('button', 'example', example);
      button.dir = 'auto';
      button.type = 'button';
      button.addEventListener('click', () => this.ask(example));
      const item = el('li');
      item.append(button);
      list.append(item);
    }
    this.empty.append(list);
    this.transcript = el('ol', 'transcript');
    this.transcript.setAttribute('aria-label', 'Conversation');
    this.scroller.append(this.empty, this.transcript);

    this.form = el('form', 'composer');
    this.attachment = el('div', 'attachment');
    this.attachment.hidden = true;
    this.attachmentText = el('blockquote', 'attachment-text');
    this.attachmentText.dir = 'auto';
    const remove = el('button', 'attachment-remove', '×');
    remove.type = 'button';
    remove.setAttribute('aria-label', 'Remove the selected passage');
    remove.addEventListener('click', () => this.attachSelection(null));
    this.attachment.append(el('span', 'attachment-label', 'About this passage'), this.attachmentText, remove);
    const row = el('div', 'composer-row');
    this.input = el('textarea', 'question-input');
    this.input.rows = 1;
    this.input.setAttribute('aria-label', 'Your question');
    this.input.setAttribute('enterkeyhint', 'send');
    this.input.dir = 'auto'; // Urdu or Arabic typed here reads right to left
    this.input.placeholder = 'Ask a question about the book';
    this.sendButton = el('button', 'send-button', 'Send');
    this.sendButton.type = 'submit';
    this.stopButton = el('button', 'stop-button', 'Stop');
    this.stopButton.type = 'button';
    this.stopButton.setAttribute('aria-label', 'Stop the answer');
    row.append(this.input, this.sendButton, this.stopButton);
    this.form.append(this.attachment, row);

    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.input.addEventListener('input', () => this.fitInput());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (this.ask(this.input.value)) this.input.value = '';
      this.fitInput();
    });
    this.stopButton.addEventListener('click', () => this.stop());

    this.root.append(this.connectionNote, this.announcer, this.scroller, this.form);
    root.append(this.root);
  }

  fitInput() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  focus() {
    this.input.focus();
  }

  announce(text) {
    this.announcer.textContent = text;
  }

  showConnection(state) {
    const changed = state !== this.connectionState;
    this.connectionState = state;
    const text = CONNECTION_TEXT[state];
    // Only worth showing when something waits on the socket, or when it is down for good.
    const waiting = this.activeTurn() || state === 'offline';
    this.connectionNote.hidden = !text || !waiting;
    this.connectionNote.textContent = text ?? '';
    this.connectionNote.dataset.state = state;
    if (text && waiting && changed) this.announce(text);
  }

  // --- asking, stopping, resuming -----------------------------------------------------------------

  activeTurn() {
    return this.state.turns.find((t) => t.status === 'sending' || t.status === 'streaming');
  }

  /** Attaches a passage the reader selected to the next question (null removes it). */
  attachSelection(text) {
    const passage = text?.trim().slice(0, MAX_SELECTION_CHARS) || null;
    this.selection = passage;
    this.attachment.hidden = !passage;
    this.attachmentText.textContent = passage ?? '';
    this.input.placeholder = passage ? 'Ask, or press Enter to explain it' : 'Ask a question about the book';
    this.focus();
  }

  /** Starts a turn; returns false when there is nothing to ask or an answer is still streaming. */
  ask(question) {
    let text = question.trim();
    if (!text && this.selection) text = 'Explain this passage.';
    if (!text || this.activeTurn()) return false;
    const turn = {
      key: randomId(),
      turnId: null,
      question: text,
      selectedText: this.selection,
      text: '',
      sources: [],
      citations: [],
      status: 'sending',
      provider: null,
      error: null,
      lastId: null,
      stopRequested: false,
    };
    this.state.conversationId ??= randomId();
    this.state.turns.push(turn);
    this.attachSelection(null);
    this.sendAsk(turn);
    this.changed(turn);
    this.updateComposer();
    this.scrollToEnd();
    return true;
  }

  sendAsk(turn) {
    const frame = { type: 'ask', question: turn.question, conversation_id: this.state.conversationId };
    if (turn.selectedText) frame.selected_text = turn.selectedText;
    if (this.greeting) return; // sent once the hello is answered
    this.connection.send(frame); // if the socket is down, onOpen sends it
  }

  stop() {
    const turn = this.activeTurn();
    if (!turn) return;
    turn.stopRequested = true;
    if (turn.turnId) this.connection.send({ type: 'cancel', turn_id: turn.turnId });
    else if (!this.connection.isOpen) this.finish(turn, { code: 'cancelled', message: 'stopped' });
    this.changed(turn);
  }

  /** Starts a new conversation; an answer still streaming is stopped. */
  reset() {
    this.stop();
    this.replaceConversation(null, []);
    this.focus();
  }

  /** Shows a conversation from the reader's history (GET /api/conversations/{id}) to read and continue. */
  loadConversation(view) {
    const turns = view.turns.map((t) => ({
      key: randomId(),
      turnId: t.turn_id,
      question: t.question,
      selectedText: t.selected_text ?? null,
      text: t.answer ?? '',
      sources: t.sources ?? [],
      citations: t.citations ?? [],
      status: t.status === 'done' ? 'done' : 'failed',
      provider: t.provider ?? null,
      error: t.status === 'done' ? null : { code: t.status, message: '' },
      lastId: null,
      // a turn kept as cancelled was stopped (by the reader, or by leaving): not an error to retry
      stopRequested: t.status === 'cancelled',
      grounded: t.grounded !== false,
      suggestions: [],
      feedback: t.feedback ?? null,
    }));
    // An answer still streaming in the conversation left behind goes on (and into the history) unseen.
    this.replaceConversation(view.id, turns);
    this.showLatest();
  }

  replaceConversation(conversationId, turns) {
    this.state = { v: 1, conversationId, turns };
    this.views.clear();
    this.transcript.replaceChildren();
    for (const turn of turns) this.renderTurn(turn);
    this.store.save(this.state);
    this.updateComposer();
  }

  get conversationId() {
    return this.state.conversationId;
  }

  /** Shows the up/down buttons once the service is known to keep history (they need it). */
  showRatings(available) {
    if (this.ratings === available) return;
    this.ratings = available;
    for (const turn of this.state.turns) this.renderTurn(turn);
    // This comes with the socket's first hello, right after the page showed its latest answer; the
    // buttons just made the turns taller, so show it again.
    this.showLatest();
  }

  rate(turn, feedback) {
    return this.reader.rate(turn.turnId, feedback).then(() => {
      turn.feedback = feedback;
      this.store.save(this.state);
    });
  }

  onOpen() {
    if (!this.reader) return this.sendPending();
    // `hello` first on every socket, so that what follows belongs to this reader; the rest waits for the
    // answer (frames are handled in order, but a refused token must not let asks go out unowned).
    this.greeting = true;
    clearTimeout(this.greetingTimer);
    this.greetingTimer = setTimeout(() => this.greeted(), HELLO_TIMEOUT_MS);
    this.sendHello();
  }

  async sendHello(options) {
    const frame = await this.reader.hello(options);
    this.helloSigned = Boolean(frame.id_token);
    this.connection.send(frame);
  }

  /** Says hello again on the open socket (the reader changed: their history was deleted). */
  helloAgain() {
    const answered = new Promise((resolve) => this.greetedWaiters.push(resolve));
    if (this.connection.isOpen && !this.greeting) this.onOpen();
    return answered; // once the service has answered (the next socket's hello, if this one is down)
  }

  greeted() {
    if (!this.greeting) return;
    this.greeting = false;
    clearTimeout(this.greetingTimer);
    this.sendPending();
    for (const resolve of this.greetedWaiters.splice(0)) resolve();
  }

  /** The answer to `hello`: a welcome, or an error naming no turn. */
  onGreeting(event) {
    if (event.type === 'welcome') {
      this.reader.welcomed(event);
    } else if (event.code === 'unauthorized' && this.helloSigned) {
      this.sendHello({ anonymous: true }); // the id token was refused (expired, say): this device's reader
      return;
    } else if (event.code === 'unauthorized' && this.reader.token) {
      this.reader.refused(); // a token the service no longer knows: become a new reader
      this.sendHello();
      return;
    } else if (event.code === 'invalid_frame') {
      this.reader.unsupported(); // a service without durable memory
    } else {
      this.reader.settle(); // the history is unavailable for now; asks still work
    }
    this.greeted();
  }

  sendPending() {
    for (const turn of this.state.turns) {
      if (turn.status === 'sending') {
        if (turn.stopRequested) this.finish(turn, { code: 'cancelled', message: 'stopped' });
        else this.sendAsk(turn);
      } else if (turn.status === 'streaming') {
        const frame = { type: 'resume', turn_id: turn.turnId };
        if (turn.lastId) frame.after = turn.lastId;
        this.connection.send(frame);
        if (turn.stopRequested) this.connection.send({ type: 'cancel', turn_id: turn.turnId });
      }
    }
    this.showConnection('open');
  }

  onEvent(event) {
    if (this.greeting && (event.type === 'welcome' || (event.type === 'error' && !event.turn_id))) {
      return this.onGreeting(event);
    }
    if (event.type === 'welcome' || event.type === 'feedback_saved') return;
    let turn = event.turn_id ? this.state.turns.find((t) => t.turnId === event.turn_id) : null;
    if (!turn && event.type === 'accepted') {
      turn = this.state.turns.find((t) => t.status === 'sending');
      if (turn) turn.turnId = event.turn_id;
    }
    if (!turn && event.type === 'error' && !event.turn_id) {
      // A refused ask (too long, rate limited…) has no turn yet.
      turn = this.state.turns.find((t) => t.status === 'sending');
      if (!turn) return this.announce(errorText(event));
    }
    if (!turn || turn.status === 'done' || turn.status === 'failed') return;
    if (event.id) {
      if (turn.lastId && compareIds(event.id, turn.lastId) <= 0) return; // seen before a reconnect
      turn.lastId = event.id;
    }
    switch (event.type) {
      case 'accepted':
        turn.status = 'streaming';
        this.state.conversationId = event.conversation_id;
        if (turn.stopRequested) this.connection.send({ type: 'cancel', turn_id: turn.turnId });
        break;
      case 'sources':
        turn.sources = event.sources;
        break;
      case 'delta':
        turn.text += event.text;
        break;
      case 'citation':
        turn.citations.push({ start: event.start, end: event.end, text: event.text, source_ids: event.source_ids });
        break;
      case 'done':
        if (turn.text !== event.answer) {
          // Should never happen (deltas concatenate to the answer); the answer is authoritative.
          console.warn('tutor: streamed text differed from the final answer; using the final answer');
          turn.repaired = true;
          turn.text = event.answer;
        }
        turn.provider = event.provider;
        turn.grounded = event.grounded !== false; // absent: an older service, whose answers all cite the book
        turn.suggestions = Array.isArray(event.suggestions)
          ? event.suggestions.filter((q) => typeof q === 'string' && q.trim()).slice(0, MAX_SUGGESTIONS)
          : [];
        this.finish(turn, null);
        break;
      case 'error':
        this.finish(turn, { code: event.code, message: event.message, retry_after: event.retry_after ?? null });
        break;
      default:
        return;
    }
    this.changed(turn);
  }

  finish(turn, error) {
    turn.status = error ? 'failed' : 'done';
    turn.error = error;
    if (error) this.announce(errorText(error, turn.stopRequested));
    this.updateComposer();
    // The previous answer's suggested questions give way to the newest's.
    for (const other of this.state.turns) if (other !== turn && other.suggestions?.length) this.dirty.add(other);
    this.onFinished?.(turn);
  }

  changed(turn) {
    this.store.save(this.state);
    this.dirty.add(turn);
    this.frame ||= requestAnimationFrame(() => {
      this.frame = 0;
      // Follow an answer while its end is in view, but never scroll past it to its sources.
      const follow = [...this.dirty].filter((t) => this.answerEndBelowView(t) < 48);
      for (const t of this.dirty) this.renderTurn(t);
      this.dirty.clear();
      for (const t of follow) {
        const below = this.answerEndBelowView(t);
        if (below > 0) this.scroller.scrollTop += below + 12;
      }
    });
  }

  updateComposer() {
    const busy = Boolean(this.activeTurn());
    const focused = this.root.getRootNode().activeElement;
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    this.empty.hidden = this.state.turns.length > 0;
    if (this.connectionState) this.showConnection(this.connectionState);
    // Keep keyboard focus on a visible control when Send and Stop swap places.
    if (busy && focused === this.sendButton) this.stopButton.focus();
    if (!busy && focused === this.stopButton) this.focus();
  }

  /** How far the end of the turn's answer (its text, or the note under it) is below the visible area. */
  answerEndBelowView(turn) {
    const view = this.views.get(turn.key);
    if (!view) return 0;
    const end = view.note.hidden ? view.body : view.note;
    return end.getBoundingClientRect().bottom - this.scroller.getBoundingClientRect().bottom;
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Brings the latest turn into view: all of it when it fits, else from its question down. */
  showLatest() {
    const last = this.transcript.lastElementChild;
    if (!last || !this.scroller.clientHeight) return;
    if (last.offsetHeight + 16 <= this.scroller.clientHeight) return this.scrollToEnd();
    const above = last.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
    this.scroller.scrollTop += above - 8;
  }

  // --- rendering ------------------------------------------------------------------------------------

  renderTurn(turn) {
    if (!this.state.turns.includes(turn)) return;
    let view = this.views.get(turn.key);
    if (!view) {
      view = this.createTurnView(turn);
      this.views.set(turn.key, view);
      this.transcript.append(view.item);
    }
    const live = turn.status === 'sending' || turn.status === 'streaming';
    view.item.dataset.status = turn.status;
    view.item.dataset.turnId = turn.turnId ?? '';
    view.body.setAttribute('aria-busy', String(live));
    view.body.replaceChildren(renderMarkdown(turn.text, this.citationMarks(turn)));
    view.note.replaceChildren();
    view.note.className = 'turn-note';
    if (live) {
      view.note.classList.add('is-working');
      view.note.textContent = turn.stopRequested ? 'Stopping…' : turn.text ? 'Writing…' : 'Searching the book…';
    } else if (turn.status === 'failed') {
      view.note.classList.add(turn.stopRequested && turn.error.code === 'cancelled' ? 'is-stopped' : 'is-error');
      view.note.textContent = errorText(turn.error, turn.stopRequested);
      if (!turn.stopRequested) view.note.append(' ', this.retryButton(turn));
    } else if (turn.grounded === false) {
      // Not an answer from the book (it does not cover the question, or small talk): the answer says so
      // itself, shown quietly, with no offline note and no source numbers.
    } else if (turn.provider === 'offline') {
      view.note.classList.add('is-offline');
      view.note.textContent = 'Offline mode: quoted from the book, without a language model.';
    }
    view.note.hidden = !view.note.textContent;
    view.item.classList.toggle('is-declined', turn.grounded === false);
    this.renderSources(view, turn);
    view.feedback.show(turn.feedback);
    view.feedback.element.hidden = !(this.ratings && turn.status === 'done' && turn.turnId);
    this.renderSuggestions(view, turn);
  }

  renderSuggestions(view, turn) {
    const latest = this.state.turns[this.state.turns.length - 1] === turn;
    const suggestions = latest && turn.status === 'done' ? (turn.suggestions ?? []) : [];
    const key = JSON.stringify(suggestions);
    if (view.suggestionsKey === key) return;
    view.suggestionsKey = key;
    view.suggestions.hidden = !suggestions.length;
    const items = suggestions.map((question) => {
      const button = el('button', 'suggestion', question);
      button.type = 'button';
      button.dir = 'auto';
      button.addEventListener('click', () => this.ask(question));
      const item = el('li');
      item.append(button);
      return item;
    });
    view.suggestions.lastChild.replaceChildren(...items);
  }

  createTurnView(turn) {
    const item = el('li', 'turn');
    const question = el('div', 'question');
    if (turn.selectedText) question.append(el('blockquote', 'question-passage', turn.selectedText));
    question.append(el('p', 'question-text', turn.question));
    for (const text of question.children) text.dir = 'auto';
    const answer = el('div', 'answer');
    const body = el('div', 'answer-body');
    body.dir = 'auto';
    body.setAttribute('aria-live', 'polite');
    body.setAttribute('aria-label', 'Answer');
    const note = el('p', 'turn-note');
    const sources = el('details', 'sources');
    sources.open = !this.compact;
    sources.append(el('summary', 'sources-title'), el('ol', 'source-list'));
    const feedback = new FeedbackControl((rating) => this.rate(turn, rating));
    const suggestions = el('div', 'suggestions');
    suggestions.hidden = true;
    suggestions.append(el('p', 'suggestions-title', 'Ask next'), el('ul', 'suggestion-list'));
    answer.append(body, note, sources, feedback.element, suggestions);
    item.append(question, answer);
    return { item, body, note, sources, feedback, suggestions };
  }

  retryButton(turn) {
    const button = el('button', 'retry-button', 'Ask again');
    button.type = 'button';
    button.addEventListener('click', () => {
      this.selection = turn.selectedText;
      this.ask(turn.question);
    });
    return button;
  }

  /** "Title › Section › Subsection": `heading` is the section's path, which may start with the title. */
  sourceLabel(source) {
    if (source.id === 'selection') return 'Your selected passage';
    const path = (source.heading ?? '').split(' > ').filter(Boolean);
    if (path[0] === source.title) path.shift();
    return [source.title, ...path].filter(Boolean).join(' › ');
  }

  link(source, content) {
    const href = source.id === 'selection' ? null : safeHref(source.url ?? '');
    if (!href) return el('span', 'source-name', content);
    const a = el('a', 'source-name', content);
    a.href = href;
    if (!this.sameTabLinks || new URL(href).origin !== location.origin) {
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
    }
    return a;
  }

  citationMarks(turn) {
    if (turn.grounded === false) return []; // nothing in it is the book's
    const toUnits = codeUnitOffsets(turn.text);
    const numbered = new Map(turn.sources.map((s, i) => [s.id, { source: s, n: i + 1 }]));
    const marks = [];
    for (const citation of turn.citations) {
      const start = toUnits(citation.start);
      const end = toUnits(citation.end);
      if (turn.text.slice(start, end) !== citation.text) continue; // its text has not streamed in yet
      const cited = citation.source_ids.map((id) => numbered.get(id)).filter(Boolean);
      marks.push({
        start,
        end,
        title: `Cited from: ${cited.map((c) => this.sourceLabel(c.source)).join('; ') || 'the book'}`,
        ref: () => {
          const refs = el('sup', 'refs');
          for (const { source, n } of cited) {
            const ref = this.link(source, String(n));
            ref.classList.add('ref');
            ref.setAttribute('aria-label', `source ${n}: ${this.sourceLabel(source)}`);
            refs.append(ref);
          }
          return refs;
        },
      });
    }
    return marks;
  }

  renderSources(view, turn) {
    const key = JSON.stringify([turn.grounded === false, turn.sources.map((s) => s.id)]);
    if (view.sourcesKey === key) return;
    view.sourcesKey = key;
    view.sources.hidden = !turn.sources.length;
    const declined = turn.grounded === false;
    view.sources.firstChild.textContent = declined ? `Nearest chapters (${turn.sources.length})` : `Sources (${turn.sources.length})`;
    view.sources.classList.toggle('unnumbered', declined); // no source numbers: nothing cites them
    const items = turn.sources.map((source) => {
      const item = el('li', 'source');
      item.append(this.link(source, this.sourceLabel(source)));
      // Snippets are raw Markdown; table pipes and code ticks only get in the way of reading them.
      const snippet = (source.snippet ?? '').replace(/\s*\|?\s*-{3,}\s*\|?|[`|*#]+/g, ' ').replace(/\s+/g, ' ').trim();
      if (snippet) item.append(el('p', 'source-snippet', snippet));
      return item;
    });
    view.sources.lastChild.replaceChildren(...items);
  }
}

export function mountChat(root, options) {
  return new Chat(root, options);
}
