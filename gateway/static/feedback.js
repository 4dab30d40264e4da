// Up or down on an answer, and for a down the optional reason and comment. The rating is saved at once
// (a reader who ignores the form has still said something); the form then adds to it. A rating can change.

import { el, pathIcon } from './dom.js';
import { REASONS } from './reader.js';

const REASON_TEXT = { wrong: 'Wrong', not_in_book: 'Not in the book', unclear: 'Unclear', other: 'Other' };
const MAX_COMMENT_CHARS = 2000;
// The turn's record is written a moment after its `done`: a rating that fast may find no turn yet.
const NOT_YET_RETRIES_MS = [600, 1500, 3000];

function arrowIcon(down) {
  return pathIcon(down ? 'M10 17 3 9h4.5V3h5v6H17z' : 'M10 3l7 8h-4.5v6h-5v-6H3z', 20);
}

let formCount = 0;

export class FeedbackControl {
  /** `save(feedback)` sends {rating, reason, comment} and resolves once stored (rejects on failure). */
  constructor(save) {
    this.save = save;
    this.feedback = null;
    this.element = el('div', 'feedback');
    this.element.setAttribute('role', 'group');
    this.element.setAttribute('aria-label', 'Rate this answer');
    this.up = this.rateButton('up', 'Helpful');
    this.down = this.rateButton('down', 'Not helpful');
    this.status = el('span', 'feedback-status');
    this.status.setAttribute('role', 'status');
    this.form = this.buildForm();
    this.element.append(this.up, this.down, this.status, this.form);
  }

  rateButton(rating, label) {
    const button = el('button', `rate rate-${rating}`);
    button.type = 'button';
    button.setAttribute('aria-label', label);
    button.title = label;
    button.setAttribute('aria-pressed', 'false');
    button.append(arrowIcon(rating === 'down'));
    button.addEventListener('click', () => this.rate(rating));
    return button;
  }

  buildForm() {
    const form = el('form', 'feedback-form');
    form.hidden = true;
    const name = `feedback-reason-${(formCount += 1)}`;
    const reasons = el('fieldset', 'feedback-reasons');
    reasons.append(el('legend', '', 'What was the problem? (optional)'));
    for (const reason of REASONS) {
      const label = el('label', 'reason');
      const input = el('input');
      input.type = 'radio';
      input.name = name;
      input.value = reason;
      label.append(input, ` ${REASON_TEXT[reason]}`);
      reasons.append(label);
    }
    this.comment = el('textarea', 'feedback-comment');
    this.comment.rows = 2;
    this.comment.maxLength = MAX_COMMENT_CHARS;
    this.comment.setAttribute('aria-label', 'Comment (optional)');
    this.comment.placeholder = 'Anything to add? (optional)';
    this.comment.dir = 'auto';
    const send = el('button', 'feedback-send', 'Send');
    send.type = 'submit';
    const skip = el('button', 'feedback-skip', 'Skip');
    skip.type = 'button';
    skip.addEventListener('click', () => {
      form.hidden = true;
      this.down.focus();
    });
    const actions = el('div', 'feedback-actions');
    actions.append(send, skip);
    form.append(reasons, this.comment, actions);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const reason = form.querySelector('input:checked')?.value ?? null;
      const comment = this.comment.value.trim() || null;
      this.store({ rating: 'down', reason, comment }).then((ok) => {
        if (ok) form.hidden = true;
      });
    });
    return form;
  }

  /** Shows the turn's stored rating (from this browser or from the server's history). */
  show(feedback) {
    this.feedback = feedback ?? null;
    this.up.setAttribute('aria-pressed', String(this.feedback?.rating === 'up'));
    this.down.setAttribute('aria-pressed', String(this.feedback?.rating === 'down'));
  }

  rate(rating) {
    const opening = rating === 'down';
    if (this.feedback?.rating === rating && !opening) return;
    if (opening) {
      this.form.hidden = false;
      const chosen = this.feedback?.rating === 'down' ? this.feedback.reason : null;
      for (const input of this.form.querySelectorAll('input')) input.checked = input.value === chosen;
      if (this.feedback?.rating === 'down') this.comment.value = this.feedback.comment ?? '';
      if (this.feedback?.rating === 'down') return; // already rated down: the form adds the why
    } else {
      this.form.hidden = true;
    }
    this.store({ rating, reason: null, comment: null });
  }

  async store(feedback) {
    const before = this.feedback;
    this.show(feedback); // at once: the button answers the click
    this.status.textContent = 'Saving…';
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.save(feedback);
        this.status.textContent = 'Thanks for the feedback.';
        return true;
      } catch (error) {
        const notYet = error?.status === 404 && attempt < NOT_YET_RETRIES_MS.length;
        if (notYet) {
          await new Promise((resolve) => setTimeout(resolve, NOT_YET_RETRIES_MS[attempt]));
          continue;
        }
        this.show(before);
        this.status.textContent = 'Your rating could not be saved. Please try again.';
        return false;
      }
    }
  }
}
