/**
 * Follows the member's event stream (/events, a WebSocket under the session
 * cookie). A lost connection is shown and retried with a growing pause (1 s
 * doubling to 10 s); every (re)connection tells the page to re-read the
 * whole state, since events missed while away are not replayed.
 */
export interface LiveEvent {
  type: string;
  time: number;
  [field: string]: unknown;
}

export type LiveState = { state: 'connecting' } | { state: 'live' } | { state: 'lost'; retryInMs: number };

export class LiveStream {
  private socket?: WebSocket;
  private delayMs = 1000;
  private timer?: number;
  private stopped = false;

  constructor(
    private readonly onEvent: (e: LiveEvent) => void,
    private readonly onState: (s: LiveState) => void,
    private readonly onConnected: () => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.socket?.close();
  }

  private connect(): void {
    this.onState({ state: 'connecting' });
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/events`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.delayMs = 1000;
      this.onState({ state: 'live' });
      this.onConnected();
    };
    socket.onmessage = (m) => {
      try {
        this.onEvent(JSON.parse(String(m.data)) as LiveEvent);
      } catch {
        // Not an event: ignored.
      }
    };
    socket.onclose = () => {
      if (this.stopped || this.socket !== socket) return;
      const wait = this.delayMs;
      this.delayMs = Math.min(this.delayMs * 2, 10_000);
      this.onState({ state: 'lost', retryInMs: wait });
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }
}
