// The chat socket: one WebSocket to /ws/chat that reconnects by itself, with backoff and jitter.
//
// It knows nothing about turns: the chat calls `onOpen` after every (re)connection so it can resume what
// was in flight, and gets every server event through `onEvent`.

const CONNECT_TIMEOUT_MS = 10_000;
const MAX_DELAY_MS = 10_000;

export class ChatConnection {
  /** `url`: ws(s)://…/ws/chat. Callbacks: onOpen(), onEvent(event), onState('connecting'|'open'|'waiting'|'offline'). */
  constructor(url, { onOpen, onEvent, onState }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onEvent = onEvent;
    this.onState = onState;
    this.socket = null;
    this.failures = 0;
    this.retryTimer = null;
    window.addEventListener('online', () => this.connectNow());
    window.addEventListener('offline', () => this.drop('offline'));
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start() {
    this.connectNow();
  }

  /** Sends a frame if the socket is open; returns whether it did (callers re-send on `onOpen`). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.socket) return;
    this.onState('connecting');
    const socket = new WebSocket(this.url);
    this.socket = socket;
    const timeout = setTimeout(() => socket.close(), CONNECT_TIMEOUT_MS);
    socket.onopen = () => {
      clearTimeout(timeout);
      this.failures = 0;
      this.onState('open');
      this.onOpen();
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // the server only sends JSON; anything else is not ours to act on
      }
      this.onEvent(event);
    };
    socket.onclose = () => {
      clearTimeout(timeout);
      if (this.socket !== socket) return;
      this.socket = null;
      this.scheduleRetry();
    };
  }

  /** Closes the current socket (a network change makes it unreliable) and waits before reconnecting. */
  drop(state) {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    if (state === 'offline') {
      clearTimeout(this.retryTimer);
      this.onState('offline'); // the `online` event reconnects
    } else {
      this.scheduleRetry();
    }
  }

  scheduleRetry() {
    if (!navigator.onLine) {
      this.onState('offline');
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, 300 * 2 ** this.failures) * (0.8 + 0.4 * Math.random());
    this.failures += 1;
    this.onState('waiting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connectNow(), delay);
  }
}
