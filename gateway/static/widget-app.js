// The book widget: a floating button that opens the chat in a panel, and an "Ask about this" button on
// any passage the reader selects. It lives in a shadow root so the book's styles and ours never mix.
import { mountChat } from './chat-core.js';
import { el, pathIcon } from './dom.js';
import { ConversationList } from './history-list.js';
import { Reader } from './reader.js';

const OPEN_KEY = 'physical-ai-tutor:widget-open';
const MIN_SELECTION_CHARS = 3;
// Docusaurus's theme classes (stable, documented for styling): its back-to-top button, and the navbar
// while its sidebar (the phone's navigation drawer) is open.
const BACK_TO_TOP = '.theme-back-to-top-button';
const OPEN_DRAWER = '.navbar-sidebar--show';

function chatIcon() {
  return pathIcon(
    'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z',
    24,
  );
}

export function mountWidget({ base }) {
  const host = el('div');
  host.id = 'physical-ai-tutor';
  const shadow = host.attachShadow({ mode: 'open' });
  const stylesheet = el('link');
  stylesheet.rel = 'stylesheet';
  stylesheet.href = new URL('static/chat.css', base).href;
  const wrapper = el('div', 'tutor-widget tutor-theme');
  wrapper.hidden = true; // until the stylesheet is in, so nothing flashes unstyled
  const reveal = () => (wrapper.hidden = false);
  stylesheet.addEventListener('load', reveal);
  stylesheet.addEventListener('error', reveal);

  const launcher = el('button', 'launcher');
  launcher.type = 'button';
  launcher.setAttribute('aria-expanded', 'false');
  launcher.setAttribute('aria-controls', 'tutor-panel');
  launcher.append(chatIcon(), el('span', '', 'Ask the tutor'));

  const panel = el('section', 'panel');
  panel.id = 'tutor-panel';
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-labelledby', 'tutor-panel-title');
  panel.hidden = true;
  const header = el('div', 'panel-header');
  const title = el('h2', 'panel-title', 'Ask the book');
  title.id = 'tutor-panel-title';
  const historyButton = el('button', 'quiet-button', 'History');
  historyButton.type = 'button';
  historyButton.setAttribute('aria-label', 'Your conversations');
  historyButton.setAttribute('aria-pressed', 'false');
  historyButton.hidden = true; // until the service is known to keep history
  const newConversation = el('button', 'quiet-button', 'New');
  newConversation.type = 'button';
  newConversation.setAttribute('aria-label', 'New conversation');
  const close = el('button', 'close-button', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Close the tutor');
  header.append(title, historyButton, newConversation, close);
  const chatRoot = el('div', 'panel-chat');
  const historyRoot = el('div', 'panel-history');
  historyRoot.hidden = true;
  panel.append(header, chatRoot, historyRoot);

  const askButton = el('button', 'ask-selection', 'Ask about this');
  askButton.type = 'button';
  askButton.hidden = true;

  wrapper.append(launcher, panel, askButton);
  shadow.append(stylesheet, wrapper);
  document.body.append(host);

  const socketUrl = new URL('ws/chat', base);
  socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  // A book with its own sign-in sets window.physicalAiTutorIdToken (see the README); read at each use.
  const reader = new Reader(base, {
    idToken: () => (typeof window.physicalAiTutorIdToken === 'function' ? window.physicalAiTutorIdToken() : null),
  });
  let list = null;
  const chat = mountChat(chatRoot, {
    socketUrl: socketUrl.href,
    storageKey: 'physical-ai-tutor:widget',
    sameTabLinks: true,
    compact: true,
    reader,
    onFinished: () => {
      const [first] = chat.state.turns;
      list?.touched(chat.conversationId, first?.question ?? '', chat.state.turns.length);
    },
  });

  // --- the reader's conversations, in place of the chat ------------------------------------------------

  const showHistory = (shown) => {
    historyRoot.hidden = !shown;
    chatRoot.hidden = shown;
    historyButton.setAttribute('aria-pressed', String(shown));
    if (shown) {
      list.refresh();
      historyRoot.querySelector('button')?.focus();
    } else {
      chat.showLatest();
    }
  };
  list = new ConversationList(reader, {
    onOpen: (view) => {
      chat.loadConversation(view);
      showHistory(false);
      chat.focus();
    },
    onDeleted: (id) => {
      if (id === null) {
        chat.reset();
        chat.helloAgain();
      } else if (id === chat.conversationId) {
        chat.reset();
      }
    },
    onAvailable: (available) => {
      historyButton.hidden = !available;
      chat.showRatings(available);
      if (!available && !historyRoot.hidden) showHistory(false);
    },
  });
  historyRoot.append(list.element);
  list.markCurrent(chat.conversationId);
  historyButton.addEventListener('click', () => showHistory(historyRoot.hidden));

  // --- opening and closing -------------------------------------------------------------------------

  const setOpen = (open, { focus = true } = {}) => {
    panel.hidden = !open;
    launcher.setAttribute('aria-expanded', String(open));
    launcher.classList.toggle('is-open', open);
    try {
      sessionStorage.setItem(OPEN_KEY, open ? '1' : '');
    } catch {
      // storage refused: the panel just won't reopen by itself after a page change
    }
    if (open) {
      chat.showLatest();
      if (focus) chat.focus();
    } else if (focus) {
      launcher.focus();
    }
  };
  launcher.addEventListener('click', () => setOpen(panel.hidden));
  close.addEventListener('click', () => setOpen(false));
  newConversation.addEventListener('click', () => {
    chat.reset();
    list.markCurrent(null);
    if (!historyRoot.hidden) showHistory(false);
  });
  panel.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') setOpen(false);
  });
  try {
    if (sessionStorage.getItem(OPEN_KEY)) setOpen(true, { focus: false }); // e.g. after following a source link
  } catch {
    // storage refused: start closed
  }
  // A panel restored with the page has no layout until the stylesheet is in: once it has a size, it shows
  // the latest answer (not the top of the conversation).
  let panelShown = false;
  new ResizeObserver(() => {
    const shown = panel.offsetHeight > 0;
    if (shown && !panelShown) chat.showLatest();
    panelShown = shown;
  }).observe(panel);

  // --- making room for the book's own controls (Docusaurus's back-to-top button and phone drawer) ---------

  let fitting = 0;
  const fitTheBook = () => {
    fitting = 0;
    // The launcher sits above the back-to-top button, which Docusaurus keeps in the page (hidden until the
    // reader scrolls back up): moving only when it shows would make the launcher jump under the pointer.
    const backToTop = document.querySelector(BACK_TO_TOP);
    const lift = backToTop ? parseFloat(getComputedStyle(backToTop).bottom) + backToTop.offsetHeight + 12 : 0;
    wrapper.style.setProperty('--launcher-bottom', `${Math.max(20, Math.round(lift))}px`);
    // While the book's navigation drawer is open on a narrow screen, the widget steps out of its way.
    wrapper.classList.toggle('book-drawer-open', Boolean(document.querySelector(OPEN_DRAWER)));
  };
  const fitSoon = () => {
    fitting ||= requestAnimationFrame(fitTheBook);
  };
  fitTheBook();
  // The book is a single-page app: its controls come and go with its pages and its menu.
  new MutationObserver(fitSoon).observe(document.body, { subtree: true, childList: true, attributeFilter: ['class'] });
  addEventListener('resize', fitSoon, { passive: true });

  // --- the book's theme (Docusaurus sets data-theme on <html>) ----------------------------------------

  const followTheme = () => {
    const theme = document.documentElement.dataset.theme;
    wrapper.classList.toggle('dark', theme === 'dark');
    wrapper.classList.toggle('light', theme === 'light');
  };
  followTheme();
  new MutationObserver(followTheme).observe(document.documentElement, { attributeFilter: ['data-theme'] });

  // --- "Ask about this" on a selected passage --------------------------------------------------------

  let passage = '';
  const hideAsk = () => {
    askButton.hidden = true;
  };
  const offerAsk = () => {
    const selection = document.getSelection();
    const text = selection && !selection.isCollapsed ? selection.toString().trim() : '';
    if (text.length < MIN_SELECTION_CHARS || host.contains(selection.anchorNode)) return hideAsk();
    const range = selection.getRangeAt(0);
    const rects = range.getClientRects();
    const last = rects[rects.length - 1] ?? range.getBoundingClientRect();
    passage = text;
    askButton.hidden = false;
    const width = askButton.offsetWidth || 130;
    const below = last.bottom + 8;
    const top = below + 40 > innerHeight ? Math.max(8, last.top - 44) : below;
    askButton.style.top = `${top}px`;
    askButton.style.left = `${Math.min(Math.max(8, last.right - width), innerWidth - width - 8)}px`;
  };
  const fromWidget = (event) => event.composedPath().includes(host);
  document.addEventListener('pointerup', (event) => {
    if (!fromWidget(event)) setTimeout(offerAsk, 0); // after the browser has settled the selection
  });
  document.addEventListener('keyup', (event) => {
    if (!fromWidget(event) && (event.shiftKey || event.key === 'Shift')) offerAsk();
  });
  document.addEventListener('selectionchange', () => {
    if (document.getSelection()?.isCollapsed) hideAsk();
  });
  addEventListener('scroll', () => askButton.hidden || offerAsk(), { passive: true, capture: true });
  askButton.addEventListener('pointerdown', (event) => event.preventDefault()); // keep the selection
  askButton.addEventListener('click', () => {
    hideAsk();
    setOpen(true);
    chat.attachSelection(passage);
  });

  /** The book's reader signed in or out: say hello again as who they are now, and show their list. */
  const signInChanged = () =>
    chat.helloAgain().then(() => {
      if (!historyRoot.hidden) list.refresh();
    });

  return { chat, open: () => setOpen(true), close: () => setOpen(false), signInChanged };
}
