// The service's front page: the chat, full window, over this site's own /ws/chat, with the reader's
// conversations beside it (a drawer on a phone) when the service keeps history.
import { mountChat } from './chat-core.js';
import { ConversationList } from './history-list.js';
import { Reader } from './reader.js';

const socketUrl = new URL('ws/chat', document.baseURI);
socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';

const aside = document.getElementById('history');
const toggle = document.getElementById('history-toggle');
const backdrop = document.getElementById('history-backdrop');
const reader = new Reader(new URL('./', document.baseURI).href);

let list = null;
const chat = mountChat(document.getElementById('chat'), {
  socketUrl: socketUrl.href,
  storageKey: 'physical-ai-tutor:page',
  reader,
  onFinished: () => {
    const [first] = chat.state.turns;
    list?.touched(chat.conversationId, first?.question ?? '', chat.state.turns.length);
  },
});

// --- the conversation list; on a narrow screen a drawer ---------------------------------------------------

const setDrawer = (open) => {
  aside.classList.toggle('is-open', open);
  backdrop.hidden = !open;
  toggle.setAttribute('aria-expanded', String(open));
  if (open) aside.focus(); // the list may still be loading: the drawer itself takes the focus
};
aside.tabIndex = -1;
toggle.addEventListener('click', () => {
  const open = !aside.classList.contains('is-open');
  setDrawer(open);
  if (open) list.refresh();
});
backdrop.addEventListener('click', () => setDrawer(false));
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && aside.classList.contains('is-open')) {
    setDrawer(false);
    toggle.focus();
  }
});

list = new ConversationList(reader, {
  onOpen: (view) => {
    chat.loadConversation(view);
    setDrawer(false);
    if (matchMedia('(pointer: fine)').matches) chat.focus();
  },
  onDeleted: (id) => {
    if (id === null) {
      chat.reset();
      chat.helloAgain(); // the reader is gone: the socket greets as a new one
    } else if (id === chat.conversationId) {
      chat.reset();
    }
  },
  onAvailable: (available) => {
    document.body.classList.toggle('has-history', available);
    aside.hidden = !available;
    toggle.hidden = !available;
    chat.showRatings(available);
  },
});
aside.append(list.element);
list.markCurrent(chat.conversationId);
list.refresh();

document.getElementById('new-conversation').addEventListener('click', () => {
  chat.reset();
  list.markCurrent(null);
});
// Straight to typing with a keyboard; on a touch screen that would pop the keyboard up over the page.
if (matchMedia('(pointer: fine)').matches) chat.focus();
