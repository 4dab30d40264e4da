// The reader's conversations (GET /api/conversations, newest first): open one to read and continue it,
// delete one, or delete everything of theirs. Hidden on a service that keeps no history.

import { el } from './dom.js';
import { HistoryUnavailable } from './reader.js';

const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['week', 7 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

/** "3 hours ago", "just now": the language of the reader's browser. */
function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return '';
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(0, 'minute');
}

export class ConversationList {
  /**
   * reader: a Reader. onOpen(conversation view) after a conversation is loaded; onDeleted(id) after one
   * is deleted (null: everything); onAvailable(bool) whenever it becomes known whether the service keeps
   * history (the answer to the socket's hello).
   */
  constructor(reader, { onOpen, onDeleted, onAvailable }) {
    this.reader = reader;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.onAvailable = onAvailable;
    this.currentId = null;
    this.next = null;
    this.loaded = false;
    this.runs = 0;
    this.element = el('nav', 'history');
    this.element.setAttribute('aria-label', 'Conversations');
    this.heading = el('h2', 'history-title', 'Conversations');
    this.heading.id = `history-title-${Math.random().toString(36).slice(2)}`;
    this.list = el('ul', 'history-list');
    this.note = el('p', 'history-note');
    this.note.setAttribute('role', 'status');
    this.moreButton = el('button', 'quiet-button history-more', 'Show more');
    this.moreButton.type = 'button';
    this.moreButton.hidden = true;
    this.moreButton.addEventListener('click', () => this.load(this.next));
    this.forgetButton = el('button', 'history-forget', 'Delete all my conversations');
    this.forgetButton.type = 'button';
    this.forgetButton.addEventListener('click', () => this.confirmForget());
    this.element.append(this.heading, this.list, this.note, this.moreButton, this.forgetButton);
    reader.watch(onAvailable);
  }

  /** Loads the newest conversations again (after a turn, or when the list is shown). */
  refresh() {
    return this.load(null);
  }

  async load(cursor) {
    const run = ++this.runs; // only the latest load fills the list
    this.note.textContent = this.loaded ? '' : 'Loading…';
    let page;
    try {
      page = await this.reader.listConversations(cursor);
      if (run !== this.runs) return;
    } catch (error) {
      if (run !== this.runs) return;
      if (!(error instanceof HistoryUnavailable && this.reader.available === false)) {
        this.note.textContent = 'Your conversations could not be loaded right now.';
      }
      return;
    }
    if (!cursor) this.list.replaceChildren();
    for (const conversation of page.conversations) this.list.append(this.item(conversation));
    this.next = page.next;
    this.moreButton.hidden = !page.next;
    this.loaded = true;
    this.note.textContent = this.list.children.length ? '' : 'No conversations yet.';
    this.forgetButton.hidden = !this.list.children.length;
    this.markCurrent(this.currentId);
  }

  item(conversation) {
    const item = el('li', 'history-item');
    item.dataset.conversationId = conversation.id;
    const open = el('button', 'history-open');
    open.type = 'button';
    const title = el('span', 'history-name', conversation.title || 'Untitled');
    title.dir = 'auto';
    const count = conversation.turns === 1 ? '1 question' : `${conversation.turns} questions`;
    open.append(title, el('span', 'history-meta', `${count} · ${ago(conversation.updated_at)}`));
    open.addEventListener('click', () => this.open(conversation.id, open));
    const remove = el('button', 'history-delete', '×');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete “${conversation.title || 'Untitled'}”`);
    remove.addEventListener('click', () => this.confirmDelete(item, conversation));
    item.append(open, remove);
    return item;
  }

  /** The conversation just got a turn: at the top of the list at once (the service records it a moment
   * later; the next refresh brings its own title and count). */
  touched(id, title, turns) {
    if (!this.loaded || !id) return;
    const existing = [...this.list.children].find((item) => item.dataset.conversationId === id);
    const item = this.item({ id, title, turns, updated_at: new Date().toISOString() });
    if (existing) existing.replaceWith(item);
    this.list.prepend(item);
    this.note.textContent = '';
    this.forgetButton.hidden = false;
    this.markCurrent(id);
  }

  markCurrent(id) {
    this.currentId = id;
    for (const item of this.list.children) {
      const open = item.querySelector('.history-open');
      if (item.dataset.conversationId === id) open?.setAttribute('aria-current', 'true');
      else open?.removeAttribute('aria-current');
    }
  }

  async open(id, button) {
    button.setAttribute('aria-busy', 'true');
    try {
      const view = await this.reader.conversation(id);
      this.markCurrent(id);
      this.onOpen(view);
    } catch (error) {
      this.note.textContent =
        error?.status === 404 ? 'That conversation no longer exists.' : 'The conversation could not be opened right now.';
      if (error?.status === 404) button.closest('li')?.remove();
    } finally {
      button.removeAttribute('aria-busy');
    }
  }

  /** A row that asks before deleting: a conversation once deleted cannot come back. */
  confirmRow(question, confirmLabel, onConfirm, onKeep) {
    const row = el('div', 'history-confirm');
    row.setAttribute('role', 'group');
    row.append(el('span', 'history-confirm-text', question));
    const yes = el('button', 'history-confirm-yes', confirmLabel);
    yes.type = 'button';
    const keep = el('button', 'quiet-button', 'Keep');
    keep.type = 'button';
    yes.addEventListener('click', onConfirm);
    keep.addEventListener('click', onKeep);
    row.append(yes, keep);
    return { row, yes, keep };
  }

  confirmDelete(item, conversation) {
    const parts = [...item.children];
    const restore = () => {
      item.replaceChildren(...parts);
      parts[1].focus();
    };
    const { row, yes, keep } = this.confirmRow('Delete this conversation?', 'Delete', async () => {
      yes.disabled = true;
      try {
        await this.reader.deleteConversation(conversation.id);
      } catch (error) {
        if (error?.status !== 404) {
          this.note.textContent = 'The conversation could not be deleted right now.';
          restore();
          return;
        }
      }
      item.remove();
      this.note.textContent = this.list.children.length ? 'Conversation deleted.' : 'No conversations yet.';
      this.forgetButton.hidden = !this.list.children.length;
      this.onDeleted(conversation.id);
    }, restore);
    item.replaceChildren(row);
    keep.focus();
  }

  confirmForget() {
    const { row, yes, keep } = this.confirmRow('Delete every conversation and rating of yours?', 'Delete all', async () => {
      yes.disabled = true;
      try {
        await this.reader.forgetMe();
      } catch {
        this.note.textContent = 'Your history could not be deleted right now.';
        row.replaceWith(this.forgetButton);
        return;
      }
      row.replaceWith(this.forgetButton);
      this.list.replaceChildren();
      this.forgetButton.hidden = true;
      this.moreButton.hidden = true;
      this.note.textContent = 'Your history is deleted.';
      this.onDeleted(null);
    }, () => {
      row.replaceWith(this.forgetButton);
      this.forgetButton.focus();
    });
    this.forgetButton.replaceWith(row);
    keep.focus();
  }
}
