// The service's front page: the chat, full window, over this site's own /ws/chat.
import { mountChat } from './chat-core.js';

const socketUrl = new URL('ws/chat', document.baseURI);
socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';

const chat = mountChat(document.getElementById('chat'), {
  socketUrl: socketUrl.href,
  storageKey: 'physical-ai-tutor:page',
});
document.getElementById('new-conversation').addEventListener('click', () => chat.reset());
// Straight to typing with a keyboard; on a touch screen that would pop the keyboard up over the page.
if (matchMedia('(pointer: fine)').matches) chat.focus();
