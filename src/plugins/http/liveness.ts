/**
 * Proof that the supervisor's event loop still turns: a timer records when it
 * last ran. A request handled after the loop was blocked (a stuck handler, a
 * synchronous disk wait) finds an old beat, even though the request itself
 * got an answer, and /liveness says 503 so an orchestrator restarts us.
 */
export class Heartbeat {
  private last: number;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly intervalMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = now();
  }

  start(): this {
    this.timer ??= setInterval(() => {
      this.last = this.now();
    }, this.intervalMs).unref();
    return this;
  }

  /** ms since the timer last ran. */
  ageMs(): number {
    return Math.max(0, this.now() - this.last);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
